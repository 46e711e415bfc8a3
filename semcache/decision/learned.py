"""The shipped learned decision: the interaction head over the embedding pass's token states.

Its weights (``model/head.npz``, and the same head as an ONNX graph, ``model/head.onnx``), the
budget -> threshold table calibrated by lookup on a held-out clustered stream (``model/thresholds.json``)
and their provenance ship in the package; nothing runs a second model pass.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from semcache.decision.base import Encoded
from semcache.decision.head import HeadWeights, pairwise_logits, project, unpack
from semcache.decision.literals import features
from semcache.decision.scorer import OnnxScorer

MODEL_DIR = Path(__file__).parent / "model"
log = logging.getLogger(__name__)


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
        log.info(
            "decision %s scores with %s",
            self.model_id,
            "its ONNX graph (head.onnx)" if self._scorer else "numpy (no head.onnx beside head.npz)",
        )

    def tokens(self, states: np.ndarray) -> np.ndarray:
        """Token states projected to the head's width, unit length, int8 (what each entry keeps)."""
        return project(self._weights, states)

    def score(self, query: Encoded, candidates: list[Encoded], similarities: np.ndarray) -> np.ndarray:
        """The probability, per candidate, that one cached answer serves both texts: all candidates in
        one ONNX Runtime call where ``head.onnx`` ships beside the weights, else pair by pair in numpy."""
        q, tokens = self._unpacked(query, candidates, similarities)
        if not candidates:
            return np.zeros(0, dtype=np.float64)
        literal = np.stack([features(query.text, candidate.text) for candidate in candidates])
        if self._scorer is not None:
            z = self._scorer.logits(q, tokens, similarities, literal)
        else:
            z = pairwise_logits(self._weights, q, tokens, similarities, literal)
        return 1.0 / (1.0 + np.exp(-z))

    def _unpacked(
        self, query: Encoded, candidates: list[Encoded], similarities: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The query's and candidates' stored tokens as float rows; refuses what cannot be scored."""
        if len(candidates) != len(similarities):
            raise ValueError(f"{len(candidates)} candidates but {len(similarities)} similarities")
        width = self._weights.width
        texts = [query, *candidates]
        if any(t.tokens is None for t in texts):
            raise ValueError("the learned decision needs the query's and each candidate's token states")
        rows = [unpack(t.tokens.reshape(-1, width)) for t in texts]
        if any(len(r) == 0 for r in rows):
            raise ValueError("a text with no token states cannot be scored")
        return rows[0], rows[1:]

    def shipped_thresholds(self) -> dict[float, float]:
        """The table ``python -m training.calibrate`` wrote beside the model."""
        return load_shipped(self._dir / "thresholds.json", self.name)
