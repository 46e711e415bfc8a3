"""What cache hits saved: priced where the hit is served, from the router's price table, and booked in
the router's ledger in one batch a second, so a hit never waits on a ledger write."""

from __future__ import annotations

import logging
import threading
from typing import Any

from router import Ledger
from semcache.periodic import Periodic
from semcache.store.records import Entry

log = logging.getLogger(__name__)


class SavingsBook:
    """Prices each hit at the model that made the entry (else the default tier) and books the rows."""

    def __init__(self, ledger: Ledger, models: set[str], interval_s: float = 1.0) -> None:
        self._ledger = ledger
        self._models = frozenset(models)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._booker = Periodic("semcache-savings", self.flush, interval_s)

    def hit(self, entry: Entry) -> float:
        """Price a hit on ``entry`` and queue its row; returns the dollars saved."""
        row = self._ledger.price_saving(
            entry.repo,
            model=entry.model if entry.model in self._models else None,
            input_tokens=entry.prompt_tokens,
            output_tokens=entry.completion_tokens,
        )
        with self._lock:
            self._rows.append(row)
        return float(row["saved_usd"])

    def flush(self) -> None:
        """Book the queued rows now (a failure is logged and the rows dropped: they are statistics)."""
        with self._lock:
            rows, self._rows = self._rows, []
        try:
            self._ledger.record_savings(rows)
        except Exception:
            log.exception("could not book %d cache savings in the ledger", len(rows))

    def start(self) -> None:
        """Book every interval in a background thread."""
        self._booker.start()

    def stop(self) -> None:
        """Stop the thread and book what is queued."""
        self._booker.stop()
