"""Degrade, don't fail: when the store cannot write (disk full, locked, read-only), the cache keeps
serving what it can. Writes that only count (hits, misses) or add (an upstream answer) are guarded: a
failure is logged once per episode, counted, and reported by ``/healthz`` as ``degraded`` with its
reason until a write succeeds again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from semcache.errors import StoreError

log = logging.getLogger(__name__)


class WriteHealth:
    """Whether the store's last guarded write failed, and why; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self.failures = 0

    @property
    def reason(self) -> str | None:
        """Why the store is degraded, or None while writes succeed."""
        return self._reason

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run a write that may fail without failing the request (the failure is recorded instead)."""
        try:
            yield
        except StoreError as exc:
            self.failed(what, exc)
        else:
            self.ok()

    def failed(self, what: str, exc: Exception) -> None:
        """Record a failed write; logs only the first of an episode."""
        with self._lock:
            first = self._reason is None
            self._reason = f"{what} could not be written: {exc}"
            self.failures += 1
        if first:
            log.error("store degraded: %s (served answers are not cached until writes succeed)", self._reason)

    def ok(self) -> None:
        """Record a successful write; ends an episode."""
        if self._reason is None:
            return
        with self._lock:
            reason, self._reason = self._reason, None
        if reason is not None:
            log.warning("store writes succeed again (after: %s)", reason)
