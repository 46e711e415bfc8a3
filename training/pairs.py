"""Batches of labelled pairs as padded token-state tensors, from a :class:`StateBank`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from semcache.decision.literals import features
from training.data import Pair
from training.states import StateBank

MAX_TOKENS = 64  # training truncates longer texts (Quora questions rarely reach it); serving does not


@dataclass
class PairArrays:
    """Pairs as bank rows, with their cosine, literal features and labels."""

    left: np.ndarray
    right: np.ndarray
    cosine: np.ndarray
    literal: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def arrays(bank: StateBank, pairs: list[Pair]) -> PairArrays:
    """Index ``pairs`` into ``bank`` (every text must be in it)."""
    left = np.array([bank.row[p.a] for p in pairs], dtype=np.int64)
    right = np.array([bank.row[p.b] for p in pairs], dtype=np.int64)
    cosine = np.einsum("ij,ij->i", bank.vectors[left], bank.vectors[right]).astype(np.float32)
    literal = np.stack([features(p.a, p.b) for p in pairs]) if pairs else np.zeros((0, 2), np.float32)
    labels = np.array([p.label for p in pairs], dtype=np.float32)
    return PairArrays(left, right, cosine, literal, labels)


def _padded(bank: StateBank, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    pieces = [
        bank.states[bank.offsets[r] : min(bank.offsets[r + 1], bank.offsets[r] + MAX_TOKENS)] for r in rows
    ]
    width = max(len(p) for p in pieces)
    states = np.zeros((len(rows), width, bank.states.shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for i, piece in enumerate(pieces):
        states[i, : len(piece)] = piece
        mask[i, : len(piece)] = 1
    return torch.from_numpy(states), torch.from_numpy(mask)


def batches(
    bank: StateBank, data: PairArrays, size: int, rng: np.random.Generator | None = None
) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """(model inputs, labels) per batch; shuffled when ``rng`` is given, in order otherwise."""
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        q, qm = _padded(bank, data.left[idx])
        c, cm = _padded(bank, data.right[idx])
        inputs = (q, qm, c, cm, torch.from_numpy(data.cosine[idx]), torch.from_numpy(data.literal[idx]))
        yield inputs, torch.from_numpy(data.labels[idx])
