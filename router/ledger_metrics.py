"""The ledger's Prometheus metrics: counters of every recorded provider attempt (since the process
started; the ledger's tables keep all time), this month's spend, the budgets and the alerts raised."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from router.registry import Budgets

if TYPE_CHECKING:  # the ledger imports this module
    from router.ledger import CallRecord

GLOBAL_SCOPE = "*"
# A provider call takes from a few hundred milliseconds to a minute.
CALL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class LedgerMetrics:
    """The series the ledger keeps in its registry."""

    def __init__(self, registry: CollectorRegistry, budgets: Budgets) -> None:
        self.month_spend = Gauge("router_month_spend_usd", "Spend this month", ["repo"], registry=registry)
        self.alerts = Counter("router_budget_alerts", "Monthly budgets crossed", ["repo"], registry=registry)
        self.calls = Counter(
            "router_calls",
            "Provider attempts by tier, model, kind (route, shadow, audit, judge) and outcome",
            ["tier", "model", "kind", "outcome"],
            registry=registry,
        )
        self.spend = Counter(
            "router_spend_usd",
            "Spend on provider calls by repo, tier, model and kind",
            ["repo", "tier", "model", "kind"],
            registry=registry,
        )
        self.tokens = Counter(
            "router_tokens",
            "Tokens of provider calls by tier, model and direction (input, output)",
            ["tier", "model", "direction"],
            registry=registry,
        )
        self.call_seconds = Histogram(
            "router_call_seconds",
            "Provider attempt latency by model and outcome",
            ["model", "outcome"],
            buckets=CALL_BUCKETS_S,
            registry=registry,
        )
        budget = Gauge("router_budget_usd", "Monthly budgets ('*': global)", ["repo"], registry=registry)
        if budgets.global_monthly_usd is not None:
            budget.labels(GLOBAL_SCOPE).set(budgets.global_monthly_usd)
        for repo, limit in budgets.repo_monthly_usd.items():
            budget.labels(repo).set(limit)

    def count(self, record: CallRecord) -> None:
        """Count one provider attempt: its outcome, latency, tokens and cost."""
        self.calls.labels(record.tier, record.model, record.kind, record.outcome).inc()
        self.call_seconds.labels(record.model, record.outcome).observe(record.latency_ms / 1000.0)
        if record.cost_usd:
            self.spend.labels(record.repo, record.tier, record.model, record.kind).inc(record.cost_usd)
        self.tokens.labels(record.tier, record.model, "input").inc(record.input_tokens)
        self.tokens.labels(record.tier, record.model, "output").inc(record.output_tokens)
