"""Which decision threshold serves a false-hit budget, for a repo.

Tuned thresholds live in the store, per repo or global (``semcache tune``); a shipped table beside the
decision model covers a fresh install. For a budget, the threshold fitted for the largest budget that
is not above it is used (never a looser one): repo first, then global, then shipped.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

from semcache.store.records import GLOBAL


class ThresholdStore(Protocol):
    """Where tuned thresholds are kept (the store implements it)."""

    def thresholds(self, model: str) -> dict[str, dict[float, float]]:
        """repo -> budget -> threshold, for one decision model."""
        ...

    def threshold_models(self) -> list[str]:
        """Every decision model with tuned thresholds."""
        ...

    def save_threshold(self, repo: str, model: str, budget: float, threshold: float, pairs: int) -> None:
        """Keep one tuned threshold."""
        ...


def pick_threshold(table: dict[float, float], budget: float) -> float | None:
    """The threshold of the loosest budget in ``table`` that is no looser than ``budget`` (None if none is)."""
    within = [b for b in table if b <= budget + 1e-12]
    return table[max(within)] if within else None


class Thresholds:
    """Resolves (repo, budget) to a threshold; thread-safe; :meth:`refresh` after the store changed."""

    def __init__(self, store: ThresholdStore, model: str, shipped: dict[float, float]) -> None:
        self._store = store
        self._model = model
        self._shipped = shipped
        self._lock = threading.Lock()
        self._tuned: dict[str, dict[float, float]] = {}
        self.refresh()

    def orphaned(self) -> list[str]:
        """Other models of the same decision with tuned thresholds here, which this model does not use
        (they were fitted to another model's scores; ``semcache tune`` fits this one's)."""
        family = self._model.split("@")[0]
        return [m for m in self._store.threshold_models() if m != self._model and m.split("@")[0] == family]

    def refresh(self) -> None:
        """Re-read the tuned thresholds from the store."""
        tuned = self._store.thresholds(self._model)
        with self._lock:
            self._tuned = tuned

    def resolve(self, repo: str, budget: float) -> float | None:
        """The threshold for ``budget``; ``inf`` when only looser budgets were calibrated; None if nothing was."""
        return self.resolve_with_source(repo, budget)[0]

    def resolve_with_source(self, repo: str, budget: float) -> tuple[float | None, str]:
        """:meth:`resolve` and where the threshold came from: "tuned" (this repo or global) or "shipped"."""
        with self._lock:
            tables = [
                (self._tuned.get(repo), "tuned"),
                (self._tuned.get(GLOBAL), "tuned"),
                (self._shipped, "shipped"),
            ]
        tables = [(t, source) for t, source in tables if t]
        for table, source in tables:
            threshold = pick_threshold(table, budget)
            if threshold is not None:
                return threshold, source
        return (math.inf, tables[-1][1]) if tables else (None, "setting")

    def budgets(self, repo: str) -> list[float]:
        """Every budget some threshold serves in ``repo`` (its own, global or shipped), loosest last."""
        with self._lock:
            tables = [self._tuned.get(repo), self._tuned.get(GLOBAL), self._shipped]
        return sorted({b for t in tables if t for b in t})

    def save(self, repo: str, budget: float, threshold: float, pairs: int) -> None:
        """Store a tuned threshold and use it from now on."""
        self._store.save_threshold(repo, self._model, budget, threshold, pairs)
        self.refresh()
