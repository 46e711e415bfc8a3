"""The learned interaction head, in numpy: scores a (query, candidate) pair from the token states of the
one embedding pass each text already had.

Each entry keeps its prompt's tokens projected to a small width, unit length, as int8 (``project``);
a lookup projects the query's tokens the same way and scores each candidate (``logit``): soft alignment
both ways, a per-token comparison with the aligned counterpart (and how far its position moved), a composition step (self-attention), pooling, and a small MLP over both sides,
the cosine and the literal features. ``training/head_model.py`` is the same maths in torch, and a test
holds the two equal. This is the reference, one pair at a time; the sidecar scores with the same head
exported as an ONNX graph (``semcache.decision.scorer``), which must agree with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INT8_SCALE = 127.0  # projected tokens are unit vectors: every coordinate lies in [-1, 1]


@dataclass(frozen=True)
class HeadWeights:
    """The head's parameters, as ``training.head_model.InteractionHead.export`` wrote them."""

    proj_w: np.ndarray
    proj_b: np.ndarray
    temperature: float
    compare_w: np.ndarray
    compare_b: np.ndarray
    compose_w: np.ndarray
    compose_b: np.ndarray
    mix_w: np.ndarray
    mix_b: np.ndarray
    out_w: np.ndarray
    out_b: float
    cosine_weight: float
    cosine_bias: float
    digest: str

    @classmethod
    def load(cls, path: Path) -> HeadWeights:
        """Read ``head.npz``; ``digest`` is the first 12 hex digits of the file's SHA-256."""
        arrays = np.load(path)
        values = {k: arrays[k].astype(np.float32) for k in arrays.files}
        scalars = ("temperature", "out_b", "cosine_weight", "cosine_bias")
        for name in scalars:
            values[name] = float(values[name])
        return cls(**values, digest=hashlib.sha256(path.read_bytes()).hexdigest()[:12])

    @property
    def width(self) -> int:
        """The width tokens are projected to (and stored at)."""
        return int(self.proj_w.shape[1])

    @property
    def literals(self) -> int:
        """How many literal features the head reads."""
        return literal_count(self.mix_w, self.compare_w)


def literal_count(mix_w: np.ndarray, compare_w: np.ndarray) -> int:
    """The literal features a head reads, from its weights: the mix layer takes both sides' pooled
    (max, mean) compositions summed and differenced, the cosine, then the literals."""
    return int(mix_w.shape[0] - 4 * compare_w.shape[1] - 1)


def project(weights: HeadWeights, states: np.ndarray) -> np.ndarray:
    """A text's token states (tokens x 384) as the head stores them: projected, unit length, int8."""
    x = states.astype(np.float32) @ weights.proj_w + weights.proj_b
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip(np.rint(x * INT8_SCALE), -127, 127).astype(np.int8)


def unpack(stored: np.ndarray) -> np.ndarray:
    """Stored int8 tokens back to float32 unit-ish vectors."""
    return stored.astype(np.float32) / INT8_SCALE


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _positions(count: int) -> np.ndarray:
    """Relative positions of ``count`` tokens, 0 (first) to 1 (last)."""
    return np.arange(count, dtype=np.float32) / max(count - 1, 1)


def _side(weights: HeadWeights, x: np.ndarray, other: np.ndarray, sim: np.ndarray) -> np.ndarray:
    alignment = _softmax(sim * weights.temperature, axis=1)
    aligned = alignment @ other
    best = sim.max(axis=1, keepdims=True)
    # How far a token's counterpart sits from it, in relative position: a swap of roles moves it.
    moved = np.abs(_positions(len(x)) - alignment @ _positions(len(other)))[:, None]
    f = _relu(
        np.concatenate([x, aligned, x - aligned, x * aligned, best, moved], axis=1) @ weights.compare_w
        + weights.compare_b
    )
    attended = _softmax(f @ f.T / np.sqrt(f.shape[1]), axis=1) @ f
    g = _relu(np.concatenate([f, attended], axis=1) @ weights.compose_w + weights.compose_b)
    return np.concatenate([g.max(axis=0), g.mean(axis=0)])


def logit(
    weights: HeadWeights, query: np.ndarray, candidate: np.ndarray, cosine: float, literal: np.ndarray
) -> float:
    """The head's logit that one cached answer serves both texts (both given as :func:`unpack` ed
    tokens; ``cosine`` of their pooled vectors; ``literal`` from ``semcache.decision.literals``)."""
    sim = query @ candidate.T
    q_side = _side(weights, query, candidate, sim)
    c_side = _side(weights, candidate, query, sim.T)
    x = np.concatenate([q_side + c_side, np.abs(q_side - c_side), [cosine], literal[: weights.literals]])
    z = _relu(x @ weights.mix_w + weights.mix_b)
    return float(z @ weights.out_w + weights.out_b + weights.cosine_weight * cosine + weights.cosine_bias)


def pairwise_logits(
    weights: HeadWeights,
    query: np.ndarray,
    candidates: list[np.ndarray],
    cosines: np.ndarray,
    literals: np.ndarray,
) -> np.ndarray:
    """:func:`logit` for each candidate in turn (one row of ``literals`` each)."""
    return np.array(
        [
            logit(weights, query, c, float(s), row)
            for c, s, row in zip(candidates, cosines, literals, strict=True)
        ],
        dtype=np.float64,
    )
