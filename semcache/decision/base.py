"""The seam of the hit decision: given a request and retrieved candidates, is a cached answer right?

A :class:`Decision` scores (query, candidate) pairs from what the one embedding pass left of each text
(:class:`Encoded`: the pooled vector and, for a learned decision, the token states in the form it stores
with each entry). Implementations are registered in :data:`DECISIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from semcache.decision.online import Combiner


@dataclass(frozen=True)
class Encoded:
    """One text as the embedding pass left it: ``tokens`` is the decision's stored form of its token
    states (None for a decision that reads none)."""

    text: str
    tokens: np.ndarray | None = None


@dataclass(frozen=True)
class DecisionPolicy:
    """The strictness of one lookup: candidates under the cosine ``min_similarity`` are not scored, and
    a scored candidate hits when its score reaches ``threshold`` (for the cosine decision the score is the
    cosine, so both are the same number)."""

    min_similarity: float
    threshold: float
    # How the score and the cosine are weighed before the threshold (None: the score alone), and where
    # the threshold came from: "online" (the repo's labels), "tuned", "shipped" or "setting".
    combiner: Combiner | None = None
    source: str = "shipped"

    def combined(self, score: float, similarity: float) -> float:
        """The number compared with the threshold."""
        return score if self.combiner is None else float(self.combiner(score, similarity))


class Decision(Protocol):
    """Decides hit or miss for (query, candidate) pairs."""

    name: str
    # What a score means: tuned thresholds are stored under it, so a threshold fitted for one model is
    # never applied to another (a retrained model starts from its own shipped table).
    model_id: str

    def tokens(self, states: np.ndarray) -> np.ndarray | None:
        """The form of a text's token states (tokens x 384) this decision stores with each entry."""
        ...

    def score(self, query: Encoded, candidates: list[Encoded], similarities: np.ndarray) -> np.ndarray:
        """Scores for each candidate, higher = more likely one answer serves both."""
        ...

    def shipped_thresholds(self) -> dict[float, float]:
        """The budget -> threshold table calibrated with the model (empty when none ships)."""
        ...


class CosineDecision:
    """A hit when the cosine similarity reaches the threshold (what every peer cache does)."""

    name = "cosine"
    model_id = "cosine"

    def tokens(self, states: np.ndarray) -> None:
        """None: the cosine reads no token states."""
        return None

    def score(self, query: Encoded, candidates: list[Encoded], similarities: np.ndarray) -> np.ndarray:
        """The cosine itself."""
        return np.asarray(similarities, dtype=np.float64)

    def shipped_thresholds(self) -> dict[float, float]:
        """None: the cosine threshold is a setting until ``semcache tune`` fits one."""
        return {}


def _learned(model_dir: Path | None) -> Decision:
    from semcache.decision.learned import MODEL_DIR, LearnedDecision

    return LearnedDecision(model_dir or MODEL_DIR)


# Each factory takes a model directory (None: the shipped model); the cosine ignores it.
DECISIONS: dict[str, Callable[[Path | None], Decision]] = {
    "cosine": lambda model_dir: CosineDecision(),
    "learned": _learned,
}


def make_decision(name: str, model_dir: Path | None = None) -> Decision:
    """Build the decision registered under ``name``, on ``model_dir``'s model if given."""
    try:
        factory = DECISIONS[name]
    except KeyError:
        raise ValueError(f"unknown decision {name!r}; known: {', '.join(sorted(DECISIONS))}") from None
    return factory(model_dir)
