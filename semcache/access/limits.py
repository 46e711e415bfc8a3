"""Per-key rate limits: a token bucket for each key, in memory (per replica)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimit:
    """Allows ``per_minute`` events a minute per key, in bursts of up to ``burst``."""

    def __init__(
        self, per_minute: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst if burst is not None else max(1, int(per_minute)))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Use one event of ``key``'s allowance: 0.0 if allowed, else the seconds until it would be."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate if self._rate > 0 else float("inf")
