"""The sidecar's Prometheus metrics (served at ``GET /metrics``) and the event-loop lag monitor.

The event loop must never wait on embedding, FAISS or SQLite (they run in worker threads). The lag
monitor checks that from the inside: a task sleeps a fixed interval and records by how much the loop
woke it late. A blocking call on the loop shows up as lag of about its duration; a busy but healthy
loop shows lag of the order of one callback.

One registry per app (``create_app`` builds it), so several apps in one process never share counters.
"""

from __future__ import annotations

import asyncio

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "LOOP_LAG_INTERVAL_S", "SidecarMetrics", "monitor_loop_lag"]

LOOP_LAG_INTERVAL_S = 0.01
# Fine at the low end: a healthy loop lags well under a millisecond, a blocked one by the blocking call.
LAG_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LOOKUP_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class SidecarMetrics:
    """The sidecar's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.loop_lag = Histogram(
            "semcache_event_loop_lag_seconds",
            f"How late the event loop woke a {LOOP_LAG_INTERVAL_S * 1000:g} ms timer",
            buckets=LAG_BUCKETS_S,
            registry=self.registry,
        )
        self.loop_lag_max = Gauge(
            "semcache_event_loop_lag_max_seconds",
            "Largest event-loop lag since the sidecar started",
            registry=self.registry,
        )
        self.lookups = Counter(
            "semcache_lookups",
            "Chat requests by cache outcome (hit-exact, hit-semantic, miss, bypass)",
            ["outcome"],
            registry=self.registry,
        )
        self.lookup_seconds = Histogram(
            "semcache_lookup_seconds",
            "Cache lookup time by outcome, including the wait for a worker thread",
            ["outcome"],
            buckets=LOOKUP_BUCKETS_S,
            registry=self.registry,
        )
        self._max_lag_s = 0.0

    def observe_loop_lag(self, lag_s: float) -> None:
        """Record one lag sample."""
        self.loop_lag.observe(lag_s)
        if lag_s > self._max_lag_s:
            self._max_lag_s = lag_s
            self.loop_lag_max.set(lag_s)

    def observe_lookup(self, outcome: str, seconds: float) -> None:
        """Record one chat request's cache outcome and lookup time."""
        self.lookups.labels(outcome).inc()
        self.lookup_seconds.labels(outcome).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


async def monitor_loop_lag(metrics: SidecarMetrics, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
    """Sleep ``interval_s`` over and over, recording each wake-up's overshoot; runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        metrics.observe_loop_lag(max(0.0, loop.time() - start - interval_s))
