"""Degrade, don't fail: when the store cannot write (disk full, locked, read-only), the cache keeps
serving what it can; when it cannot be read at all (a database outage), lookups miss. Lookups and the
writes that only count (hits, misses) or add (an upstream answer) are guarded: a
failure is logged once per episode, counted, and reported by ``/healthz`` as ``degraded`` with its
reason until that same kind of write succeeds again (a small update may pass on a full disk while
new entries still fail).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from semcache.errors import StoreError

log = logging.getLogger(__name__)


class WriteHealth:
    """Which kinds of store write are failing, and why; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # kind of write -> why it failed last
        self.failures = 0

    @property
    def reason(self) -> str | None:
        """Why the store is degraded, or None while every kind of write succeeds."""
        with self._lock:
            return "; ".join(self._failing.values()) or None

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run a write that may fail without failing the request (the failure is recorded instead)."""
        try:
            yield
        except StoreError as exc:
            self.failed(what, exc)
        else:
            self.ok(what)

    def failed(self, what: str, exc: Exception) -> None:
        """Record a failed write; logs only the first of an episode."""
        with self._lock:
            first = not self._failing  # one line per episode, whatever failed first
            self._failing[what] = f"{what} failed: {exc}"
            self.failures += 1
        if first:
            log.error("store degraded: %s failed (%s); serving on, not caching", what, exc)

    def failing(self, what: str) -> bool:
        """Whether this kind of store access failed last time."""
        return what in self._failing

    def ok(self, what: str) -> None:
        """Record a successful write of one kind; ends that kind's episode."""
        if what not in self._failing:
            return
        with self._lock:
            reason = self._failing.pop(what, None)
            over = reason is not None and not self._failing
        if over:
            log.warning("store works again (after: %s)", reason)
