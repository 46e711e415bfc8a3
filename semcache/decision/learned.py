"""The shipped learned decision: the interaction head over the embedding pass's token states.

Its weights (``model/head.npz``), the budget -> threshold table calibrated by lookup on a held-out
clustered stream (``model/thresholds.json``) and their provenance ship in the package; nothing runs a
second model pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from semcache.decision.base import Encoded
from semcache.decision.head import HeadWeights, logit, project, unpack
from semcache.decision.literals import features
from semcache.decision.scorer import OnnxScorer

MODEL_DIR = Path(__file__).parent / "model"


def load_shipped(path: Path, decision: str) -> dict[float, float]:
    """The shipped budget -> threshold table for ``decision`` (empty if none ships).

    The file holds ``{"tables": {decision: {budget: threshold}}, ...}`` plus how it was calibrated.
    """
    if not path.exists():
        return {}
    table = json.loads(path.read_text()).get("tables", {}).get(decision, {})
    return {float(budget): float(threshold) for budget, threshold in table.items()}


class LearnedDecision:
    """Scores pairs with the interaction head; probabilities in (0, 1)."""

    name = "learned"

    def __init__(self, model_dir: Path = MODEL_DIR) -> None:
        self._dir = Path(model_dir)
        head = self._dir / "head.npz"
        if not head.exists():
            raise FileNotFoundError(f"no decision model in {self._dir}; run python -m training.train_head")
        self._weights = HeadWeights.load(head)
        self.model_id = f"{self.name}@{self._weights.digest}"
        graph = self._dir / "head.onnx"
        self._scorer = OnnxScorer(graph, self._weights) if graph.exists() else None

    def tokens(self, states: np.ndarray) -> np.ndarray:
        """Token states projected to the head's width, unit length, int8 (what each entry keeps)."""
        return project(self._weights, states)

    def score(self, query: Encoded, candidates: list[Encoded], similarities: np.ndarray) -> np.ndarray:
        """The probability, per candidate, that one cached answer serves both texts: all candidates in
        one ONNX Runtime call where ``head.onnx`` ships beside the weights, else pair by pair in numpy."""
        if query.tokens is None:
            raise ValueError("the learned decision needs the query's token states")
        if any(candidate.tokens is None for candidate in candidates):
            raise ValueError("the learned decision needs each candidate's token states")
        if not candidates:
            return np.zeros(0, dtype=np.float64)
        width = self._weights.width
        q = unpack(query.tokens.reshape(-1, width))
        tokens = [unpack(candidate.tokens.reshape(-1, width)) for candidate in candidates]
        literal = np.stack([features(query.text, candidate.text) for candidate in candidates])
        if self._scorer is not None:
            z = self._scorer.logits(q, tokens, similarities, literal)
        else:
            z = np.array(
                [
                    logit(self._weights, q, c, float(s), row)
                    for c, s, row in zip(tokens, similarities, literal, strict=True)
                ]
            )
        return 1.0 / (1.0 + np.exp(-z))

    def shipped_thresholds(self) -> dict[float, float]:
        """The table ``python -m training.calibrate`` wrote beside the model."""
        return load_shipped(self._dir / "thresholds.json", self.name)
