"""A background thread that calls one function every interval, and once more when stopped: how the
counters and the savings book write what they buffered off the request path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from semcache.errors import StoreError

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work`` every ``interval_s`` in a daemon thread named ``name``."""

    def __init__(self, name: str, work: Callable[[], None], interval_s: float = 1.0) -> None:
        self._name = name
        self._work = work
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start calling ``work`` every interval."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then call ``work`` a last time (what is pending is not lost, unless the store
        cannot take it: then it is logged and dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._work()
        except Exception:
            log.exception("%s failed at shutdown", self._name)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval_s):
            try:
                self._work()
            except StoreError:  # an outage: the store's health reports it; keep trying
                failing = True
            except Exception:  # anything else is a bug: say it once per episode, keep the thread alive
                if not failing:
                    log.exception("%s failed; retrying every %g s", self._name, self._interval_s)
                failing = True
            else:
                failing = False
