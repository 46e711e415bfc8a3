"""Pieces shared by the decision benchmarks: the embedding model, precomputed vectors, operating points."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT
from semcache.calibration import Point
from semcache.embedding import SentenceTransformerEmbedder
from semcache.keys import normalize_prompt
from semcache.tuning import NOT_SERVED, LabelledPair, PairScores, load_pairs

MODEL_DIR = Path(os.environ.get("SEMCACHE_BENCH_MODEL_DIR", ROOT / "results" / "model"))


def embedder() -> SentenceTransformerEmbedder:
    """The packaged MiniLM on ONNX (exported once under results/model)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformerEmbedder(MODEL_DIR)
    model.load()
    return model


class PrecomputedEmbedder:
    """Serves vectors computed once up front, so repeated simulations skip the model."""

    dim = 384

    def __init__(self, texts: list[str], model: SentenceTransformerEmbedder) -> None:
        # The cache embeds the normalized prompt, so that is the key.
        unique = list(dict.fromkeys(normalize_prompt(t) for t in texts))
        self._vectors = dict(zip(unique, model.encode(unique), strict=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of texts seen at construction."""
        return np.vstack([self._vectors[t] for t in texts])


def sample_pairs(path: Path, limit: int, seed: int = 0) -> list[LabelledPair]:
    """A seeded sample of up to ``limit`` labelled pairs (all when limit is 0)."""
    pairs = load_pairs(path)
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
    values = scores.cosine if use_cosine else scores.verifier
    negatives = scores.labels == 0
    return float(((values >= threshold) & (values > NOT_SERVED) & negatives).sum() / max(negatives.sum(), 1))
