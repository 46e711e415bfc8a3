"""Which decision threshold serves a false-hit budget, for a repo.

Tuned thresholds live in the store, per repo or global (``semcache tune``); a shipped table beside the
verifier model covers a fresh install. For a budget, the threshold fitted for the largest budget that
is not above it is used (never a looser one): repo first, then global, then shipped.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from semcache.store import GLOBAL, Store


def load_shipped(path: Path, verifier: str) -> dict[float, float]:
    """The shipped budget → threshold table for ``verifier`` (empty if none ships).

    The file holds ``{"tables": {verifier: {budget: threshold}}, ...}`` plus how it was calibrated.
    """
    if not path.exists():
        return {}
    table = json.loads(path.read_text()).get("tables", {}).get(verifier, {})
    return {float(budget): float(threshold) for budget, threshold in table.items()}


def pick_threshold(table: dict[float, float], budget: float) -> float | None:
    """The threshold of the loosest budget in ``table`` that is no looser than ``budget`` (None if none is)."""
    within = [b for b in table if b <= budget + 1e-12]
    return table[max(within)] if within else None


class Thresholds:
    """Resolves (repo, budget) to a threshold; thread-safe; :meth:`refresh` after the store changed."""

    def __init__(self, store: Store, verifier: str, shipped: dict[float, float]) -> None:
        self._store = store
        self._verifier = verifier
        self._shipped = shipped
        self._lock = threading.Lock()
        self._tuned: dict[str, dict[float, float]] = {}
        self.refresh()

    def orphaned(self) -> list[str]:
        """Other models of the same verifier with tuned thresholds here, which this model does not use
        (they were fitted to another model's scores; ``semcache tune`` fits this one's)."""
        family = self._verifier.split("@")[0]
        return [
            m for m in self._store.threshold_models() if m != self._verifier and m.split("@")[0] == family
        ]

    def refresh(self) -> None:
        """Re-read the tuned thresholds from the store."""
        tuned = self._store.thresholds(self._verifier)
        with self._lock:
            self._tuned = tuned

    def resolve(self, repo: str, budget: float) -> float | None:
        """The threshold for ``budget``; ``inf`` when only looser budgets were calibrated; None if nothing was."""
        with self._lock:
            tables = [self._tuned.get(repo), self._tuned.get(GLOBAL), self._shipped]
        tables = [t for t in tables if t]
        for table in tables:
            threshold = pick_threshold(table, budget)
            if threshold is not None:
                return threshold
        return math.inf if tables else None

    def save(self, repo: str, budget: float, threshold: float, pairs: int) -> None:
        """Store a tuned threshold and use it from now on."""
        self._store.save_threshold(repo, self._verifier, budget, threshold, pairs)
        self.refresh()
