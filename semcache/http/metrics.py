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


# Per-repo series, set from each repo's calibration report when /metrics is scraped.
REPO_GAUGES = {
    "labels": "Live labels of the repo's online calibration",
    "false_hit_share": "Estimated false-hit share of the repo's served hits (from its labels)",
    "false_hit_share_upper": "Upper end of that estimate's 95 % interval",
    "threshold": "The repo's decision threshold at the default budget (NaN: no semantic hits)",
    "threshold_online": "1 when the repo's threshold comes from its own labels, else 0",
    "audit_rate": "Share of the repo's semantic hits audited",
    "audits": "Audit calls made for the repo",
    "audit_overflow": "Audit jobs of the repo dropped because the queue was full",
}


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
        self.audit_jobs = Counter(
            "semcache_audit_jobs",
            "Audit jobs by outcome: near_miss / audit / feedback (a label made), overflow (dropped, queue "
            "full), upstream_failed, judge_failed, skipped (entry gone), failed",
            ["outcome"],
            registry=self.registry,
        )
        self.store_write_failures = Gauge(
            "semcache_store_write_failures",
            "Store writes that failed since start (disk full, locked, read-only); the cache served on",
            registry=self.registry,
        )
        self.auth_denials = Counter(
            "semcache_auth_denials",
            "Requests refused by auth: 401 (no key, or a wrong or revoked one), 403 (out of the key's scope)",
            ["status"],
            registry=self.registry,
        )
        self.key_requests = Counter(
            "semcache_key_requests",
            "Chat requests served per key name, by outcome (hit, other)",
            ["key", "outcome"],
            registry=self.registry,
        )
        self.repo_gauges = {
            name: Gauge(f"semcache_repo_{name}", text, ["repo"], registry=self.registry)
            for name, text in REPO_GAUGES.items()
        }
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

    def observe_repo(self, repo: str, decision: dict) -> None:
        """Set a repo's calibration series from :meth:`SemanticCache.decision`'s report."""
        labels, audit = decision["labels"], decision["audit"]
        share = labels.get("false_hit_share") or {"estimate": float("nan"), "interval": [0.0, float("nan")]}
        threshold = decision["threshold"]
        values = {
            "labels": labels["total"],
            "false_hit_share": share["estimate"],
            "false_hit_share_upper": share["interval"][1],
            "threshold": float("nan") if threshold is None else threshold,
            "threshold_online": float(decision["source"] == "online"),
            "audit_rate": audit["rate"],
            "audits": audit["audits"],
            "audit_overflow": audit["overflow"],
        }
        for name, value in values.items():
            self.repo_gauges[name].labels(repo).set(value)

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
