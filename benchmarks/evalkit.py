"""Pieces shared by the decision benchmarks: the embedding model, precomputed vectors, operating points."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, ticking
from semcache.decision.calibration import Point
from semcache.decision.tuning import NOT_SERVED, LabelledPair, PairScores, load_pairs
from semcache.embedding import DIM, SentenceTransformerEmbedder
from training.data import pair_digest, pair_half

MODEL_DIR = Path(os.environ.get("SEMCACHE_BENCH_MODEL_DIR", ROOT / "results" / "model"))


def embedder(precision: str = "int8", model_dir: Path = MODEL_DIR) -> SentenceTransformerEmbedder:
    """The packaged MiniLM on ONNX (exported once under ``model_dir``), int8 as the sidecar runs it, on
    every core."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformerEmbedder(model_dir, threads=os.cpu_count() or 1, precision=precision)
    model.load()
    return model


class PrecomputedEmbedder:
    """Serves the vectors and token states (what the learned decision reads) computed once by the real
    embedder (same model, same ONNX backend as the sidecar), so repeated simulations do not embed every
    text again."""

    dim = DIM

    def __init__(self, model: SentenceTransformerEmbedder) -> None:
        self._model = model
        self._vectors: dict[str, np.ndarray] = {}
        self._states: dict[str, np.ndarray] = {}

    def add(self, texts: list[str]) -> None:
        """Embed the texts not seen yet (sorted by length, so a batch pads to little more than itself)."""
        todo = sorted({t for t in texts if t not in self._vectors}, key=len)
        for start in ticking(range(0, len(todo), 256), f"embedding {len(todo)} texts, batches of 256"):
            chunk = todo[start : start + 256]
            vectors, states = self._model.encode_states(chunk)
            self._vectors.update(zip(chunk, vectors, strict=True))
            self._states.update(zip(chunk, states, strict=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts``, embedding any not seen yet."""
        return self.encode_states(texts)[0]

    def encode_states(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors and token states of ``texts``, embedding any not seen yet."""
        self.add(texts)
        return np.stack([self._vectors[t] for t in texts]), [self._states[t] for t in texts]


# MRPC and STS-B come without a train / dev split: the decision's training uses the half that a hash of
# each pair assigns to "train" (training.data.pair_half); the decision benchmarks measure on the other.
SPLIT_FILES = ("mrpc_pairs.jsonl", "stsb_pairs.jsonl")


def pair_sha1(pair: LabelledPair) -> bytes:
    """What names a pair without its text (the label audit's verdicts)."""
    return pair_digest(pair.a, pair.b)


def half(pairs: list[LabelledPair], part: str) -> list[LabelledPair]:
    """The pairs a hash of their text assigns to ``part`` ("train" or "eval"), about half of them."""
    return [p for p in pairs if pair_half(p) == part]


ADVERSARIAL = sorted((ROOT / "benchmarks" / "data").glob("adversarial_*.jsonl"))


def adversarial_pairs() -> list[LabelledPair]:
    """Every pair of the project's adversarial sets, pooled."""
    return [pair for path in ADVERSARIAL for pair in load_pairs(path)]


def sample_pairs(path: Path, limit: int, seed: int = 0) -> list[LabelledPair]:
    """A seeded sample of up to ``limit`` labelled pairs (all when limit is 0); of a split file, only
    its evaluation half."""
    pairs = load_pairs(path)
    if path.name in SPLIT_FILES:
        pairs = half(pairs, "eval")
    return random.Random(seed).sample(pairs, limit) if 0 < limit < len(pairs) else pairs


def operating_point(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Point:
    """Precision, recall and false-hit rate when serving pairs whose score reaches ``threshold``."""
    served = (scores >= threshold) & (scores > NOT_SERVED)
    tp = int((served & (labels == 1)).sum())
    n_served, positives = int(served.sum()), max(int(labels.sum()), 1)
    precision = tp / n_served if n_served else 1.0
    recall = tp / positives
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    wrong = n_served - tp
    return Point(
        threshold, n_served, wrong, precision, recall, wrong / n_served if n_served else 0.0, f1, float("nan")
    )


def negatives_served(scores: PairScores, threshold: float, use_cosine: bool = False) -> float:
    """Share of the negative pairs that would be served at ``threshold``."""
    values = scores.cosine if use_cosine else scores.decision
    negatives = scores.labels == 0
    return float(((values >= threshold) & (values > NOT_SERVED) & negatives).sum() / max(negatives.sum(), 1))
