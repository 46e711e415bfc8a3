"""Scoring many texts' pairs through the shipped decision code path, from a :class:`StateBank`.

A decision scores exactly as in a lookup (``Decision.tokens`` then ``Decision.score``); only the
embedding pass is read from the bank instead of being run again.
"""

from __future__ import annotations

import numpy as np

from semcache.decision import Decision, Encoded
from training.states import StateBank


class BankScorer:
    """Scores pairs of bank texts with one decision, keeping each text's stored form once made."""

    def __init__(self, bank: StateBank, decision: Decision) -> None:
        self.bank = bank
        self.decision = decision
        self._encoded: dict[str, Encoded] = {}

    def encoded(self, text: str) -> Encoded:
        """The text as a lookup or an entry would hold it."""
        found = self._encoded.get(text)
        if found is None:
            found = Encoded(text, self.decision.tokens(self.bank.tokens(text).astype(np.float32)))
            self._encoded[text] = found
        return found

    def cosines(self, left: list[str], right: list[str]) -> np.ndarray:
        """Cosine of the pooled vectors of each pair."""
        a = np.stack([self.bank.vector(t) for t in left])
        b = np.stack([self.bank.vector(t) for t in right])
        return np.einsum("ij,ij->i", a, b)

    def scores(self, left: list[str], right: list[str], cosines: np.ndarray | None = None) -> np.ndarray:
        """The decision's score of each (query, cached) pair."""
        cosines = self.cosines(left, right) if cosines is None else cosines
        return np.array([
            self.decision.score(self.encoded(a), [self.encoded(b)], np.array([c]))[0]
            for a, b, c in zip(left, right, cosines, strict=True)
        ])  # fmt: skip
