"""The sidecar's Prometheus metrics (served at ``GET /metrics``) and the event-loop lag monitor.

The event loop must never wait on embedding, FAISS or SQLite (they run in worker threads). The lag
monitor checks that from the inside: a task sleeps a fixed interval and records by how much the loop
woke it late. A blocking call on the loop shows up as lag of about its duration; a busy but healthy
loop shows lag of the order of one callback.

One registry per app (``create_app`` builds it), so several apps in one process never share counters.
Series labelled by repo are bounded: the first ``max_repos`` repos seen get their own, the others share
``repo="(other)"`` (a name no repo can have). The router's own metrics (spend, calls, budget alerts) are
served from the same endpoint with the same bound on their ``repo`` label.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "LOOP_LAG_INTERVAL_S",
    "OTHER_REPOS",
    "RepoLabels",
    "SidecarMetrics",
    "monitor_loop_lag",
]

LOOP_LAG_INTERVAL_S = 0.01
# Fine at the low end: a healthy loop lags well under a millisecond, a blocked one by the blocking call.
LAG_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LOOKUP_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
# Provider answers take from a few hundred milliseconds to a minute.
UPSTREAM_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
# Parentheses are not allowed in repo names, so no repo can be mistaken for the overflow.
OTHER_REPOS = "(other)"
BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


# Per-repo series, set from each repo's calibration report when /metrics is scraped.
THRESHOLD_SOURCES = ("online", "tuned", "shipped", "setting")
REPO_GAUGES = {
    "labels": "Live labels of the repo's online calibration",
    "false_hit_share": "Estimated false-hit share of the repo's served hits (from its labels)",
    "false_hit_share_lower": "Lower end of that estimate's 95 % interval",
    "false_hit_share_upper": "Upper end of that estimate's 95 % interval",
    "threshold": "The repo's decision threshold at the default budget (NaN: no semantic hits)",
    "threshold_online": "1 when the repo's threshold comes from its own labels, else 0",
    "audit_rate": "Share of the repo's semantic hits audited",
    "judge_moves_threshold": "1 when the audit's judge is one whose labels may set the repo's threshold",
    "audits": "Audit calls made for the repo",
    "audit_overflow": "Audit jobs of the repo dropped because the queue was full",
    "false_hit_budget": "The false-hit budget the repo's threshold is fitted to (the default budget)",
}


class RepoLabels:
    """The ``repo`` label value of each repo: its name for the first ``limit`` repos seen, then
    :data:`OTHER_REPOS`. A repo keeps its label for the life of the process (counters cannot move)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._own: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, repo: str) -> str:
        if repo in self._own:
            return repo
        with self._lock:
            if len(self._own) < self.limit:
                self._own.add(repo)
                return repo
        return OTHER_REPOS

    def own(self) -> set[str]:
        """The repos that have series of their own."""
        with self._lock:
            return set(self._own)


class SidecarMetrics:
    """The sidecar's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None, max_repos: int = 100) -> None:
        self.registry = registry or CollectorRegistry()
        self.repo_label = RepoLabels(max_repos)
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
        self.store_write_failures = Gauge(
            "semcache_store_write_failures",
            "Store calls that failed since start (disk full, locked, read-only, database unreachable); the "
            "cache served on",
            registry=self.registry,
        )
        self.store_available = Gauge(
            "semcache_store_available",
            "1 while lookups can read the store, 0 during an outage (lookups miss, answers go uncached)",
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
        self._max_lag_s = 0.0
        self._entry_labels: set[str] = set()
        self._add_calibration_metrics()
        self._add_traffic_metrics()

    def _add_calibration_metrics(self) -> None:
        """The audit's jobs and each repo's decision and labels."""
        self.audit_jobs = Counter(
            "semcache_audit_jobs",
            "Audit jobs by outcome: near_miss / audit / feedback (a label made), overflow (dropped, queue "
            "full), upstream_failed, judge_failed, skipped (entry gone, or an answer the cache would not "
            "store), failed",
            ["outcome"],
            registry=self.registry,
        )
        self.repo_gauges = {
            name: Gauge(f"semcache_repo_{name}", text, ["repo"], registry=self.registry)
            for name, text in REPO_GAUGES.items()
        }
        self.repo_threshold_source = Gauge(
            "semcache_repo_threshold_source",
            "1 for where the repo's threshold at the default budget comes from (online: its own labels; "
            "tuned: semcache tune; shipped: the model's table; setting: SEMCACHE_MIN_SIMILARITY), 0 else",
            ["repo", "source"],
            registry=self.registry,
        )

    def _add_traffic_metrics(self) -> None:
        self.repo_lookups = Counter(
            "semcache_repo_lookups",
            "Chat requests by repo and cache outcome (hit-exact, hit-semantic, miss, bypass)",
            ["repo", "outcome"],
            registry=self.registry,
        )
        self.requests = Counter(
            "semcache_requests",
            "Chat requests by repo and how they were answered: hit (from the cache), upstream, error "
            "(the miss path failed, or a stream broke)",
            ["repo", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "semcache_upstream_seconds",
            "Time the miss path took: the whole answer (complete), or until the stream began (stream); "
            "outcome ok or error",
            ["mode", "outcome"],
            buckets=UPSTREAM_BUCKETS_S,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "semcache_upstream_errors",
            "Failed miss-path calls by error kind (upstream_timeout, upstream_rate_limited, upstream_error, ...)",
            ["kind"],
            registry=self.registry,
        )
        self.tokens_saved = Counter(
            "semcache_tokens_saved",
            "Prompt and completion tokens hits saved",
            ["repo"],
            registry=self.registry,
        )
        self.cost_saved = Counter(
            "semcache_cost_saved_usd",
            "Dollars hits saved, priced at the model that made the entry (with the router only)",
            ["repo"],
            registry=self.registry,
        )
        self.repo_entries = Gauge(
            "semcache_repo_entries", "Entries in the store per repo", ["repo"], registry=self.registry
        )
        self.breaker_state = Gauge(
            "semcache_breaker_state",
            "The router's circuit breaker per model: 0 closed, 1 half-open, 2 open",
            ["model"],
            registry=self.registry,
        )

    def observe_loop_lag(self, lag_s: float) -> None:
        """Record one lag sample."""
        self.loop_lag.observe(lag_s)
        if lag_s > self._max_lag_s:
            self._max_lag_s = lag_s
            self.loop_lag_max.set(lag_s)

    def observe_lookup(self, outcome: str, seconds: float, repo: str | None = None) -> None:
        """Record one chat request's cache outcome and lookup time (and its repo's count)."""
        self.lookups.labels(outcome).inc()
        self.lookup_seconds.labels(outcome).observe(seconds)
        if repo is not None:
            self.repo_lookups.labels(self.repo_label(repo), outcome).inc()

    def observe_hit(self, repo: str, tokens: int, usd: float | None) -> None:
        """Record a request served from the cache and what it saved (``usd``: None without the
        router's prices)."""
        label = self.repo_label(repo)
        self.tokens_saved.labels(label).inc(tokens)
        self.requests.labels(label, "hit").inc()
        if usd is not None:
            self.cost_saved.labels(label).inc(usd)

    def observe_upstream(self, mode: str, seconds: float, failed: bool = False) -> None:
        """Record how long a miss-path call took: the whole answer, or until its stream began."""
        self.upstream_seconds.labels(mode, "error" if failed else "ok").observe(seconds)

    def observe_answer(self, repo: str, error: Exception | None = None) -> None:
        """Record a request the miss path answered, or failed to (before or during its stream)."""
        self.requests.labels(self.repo_label(repo), "upstream" if error is None else "error").inc()
        if error is not None:
            self.upstream_errors.labels(getattr(error, "kind", None) or type(error).__name__).inc()

    def observe_repos(self, entries: dict[str, int], decision: Callable[[str], dict]) -> None:
        """Set each repo's entries (repos past the cap summed as one) and the calibration series of the
        repos with series of their own (busiest first, so the cap admits the largest at start-up)."""
        totals: dict[str, int] = dict.fromkeys(self._entry_labels, 0)  # a purged repo drops to 0
        for repo, count in sorted(entries.items(), key=lambda item: -item[1]):
            label = self.repo_label(repo)
            totals[label] = totals.get(label, 0) + count
            if label != OTHER_REPOS:
                self.observe_repo(repo, decision(repo))
        for label, count in totals.items():
            self.repo_entries.labels(label).set(count)
        self._entry_labels = set(totals)

    def observe_breakers(self, snapshots: Iterable[Any]) -> None:
        """Set each model's breaker state from the router's ``breaker_states()``."""
        for snapshot in snapshots:
            self.breaker_state.labels(snapshot.model).set(BREAKER_STATES.get(str(snapshot.state), 0.0))

    def watch(self, source: CollectorRegistry) -> None:
        """Serve another registry's metrics (the router's) with this one, its repo label bounded."""
        self.registry.register(_BoundedRepos(source, self.repo_label))

    def observe_repo(self, repo: str, decision: dict) -> None:
        """Set a repo's calibration series from :meth:`SemanticCache.decision`'s report."""
        labels, audit = decision["labels"], decision["audit"]
        nan = float("nan")
        share = labels.get("false_hit_share") or {"estimate": nan, "interval": [nan, nan]}
        threshold = decision["threshold"]
        values = {
            "labels": labels["total"],
            "false_hit_share": share["estimate"],
            "false_hit_share_lower": share["interval"][0],
            "false_hit_share_upper": share["interval"][1],
            "threshold": float("nan") if threshold is None else threshold,
            "threshold_online": float(decision["source"] == "online"),
            "audit_rate": audit["rate"],
            "judge_moves_threshold": float(audit["judge_moves_threshold"]),
            "audits": audit["audits"],
            "audit_overflow": audit["overflow"],
            "false_hit_budget": decision["false_hit_budget"],
        }
        for name, value in values.items():
            self.repo_gauges[name].labels(repo).set(value)
        for source in THRESHOLD_SOURCES:
            self.repo_threshold_source.labels(repo, source).set(float(decision["source"] == source))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _BoundedRepos(Collector):
    """Another registry's metrics, each sample's ``repo`` label passed through a :class:`RepoLabels`
    (``"*"``, the router's global scope, kept); samples that end up alike are summed."""

    def __init__(self, source: CollectorRegistry, labels: RepoLabels) -> None:
        self._source = source
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                labels = dict(sample.labels)
                if labels.get("repo", "*") != "*":
                    labels["repo"] = self._labels(labels["repo"])
                key = (sample.name, tuple(labels.items()))
                if key not in merged:
                    merged[key] = sample.value
                elif sample.name.endswith("_created"):  # a start time: the earliest, never a sum
                    merged[key] = min(merged[key], sample.value)
                else:
                    merged[key] += sample.value
            bounded = Metric(family.name, family.documentation, family.type, family.unit)
            for (name, labels), value in merged.items():
                bounded.add_sample(name, dict(labels), value)
            yield bounded


async def monitor_loop_lag(metrics: SidecarMetrics, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
    """Sleep ``interval_s`` over and over, recording each wake-up's overshoot; runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        metrics.observe_loop_lag(max(0.0, loop.time() - start - interval_s))
