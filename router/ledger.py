"""Token and cost accounting in SQLite (via sqlite-utils).

Tables:
  calls    one row per provider attempt: repo, tier, model, kind (route | shadow | audit | judge),
           outcome, tokens
           (input includes the system prompt), cost priced from the registry, latency
  savings  one row per cache hit: the cost the hit saved, priced at the model that would have served it
  routes   the routing log: the tier chosen per request, with optional prompt text and feedback
  shadow   primary vs candidate answers, latencies and costs, for comparison
  alerts   budget alerts raised, one per scope and month, so a restart does not alert twice
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from prometheus_client import CollectorRegistry

from router.ledger_metrics import LedgerMetrics
from router.registry import Budgets, Registry

log = logging.getLogger(__name__)

GLOBAL_SCOPE = "*"


@dataclass(frozen=True)
class CallRecord:
    """One provider attempt, as the ledger stores it."""

    request_id: str
    repo: str
    tier: str
    model: str
    outcome: str
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    kind: str = "route"
    error: str = ""


@dataclass(frozen=True)
class ShadowRecord:
    """A shadow comparison: the answer returned and the candidate's, never returned."""

    request_id: str
    repo: str
    tier: str
    primary_model: str
    candidate_model: str
    primary_answer: str
    candidate_answer: str
    primary_latency_ms: float
    candidate_latency_ms: float
    primary_cost_usd: float
    candidate_cost_usd: float
    candidate_error: str = ""


@dataclass(frozen=True)
class BudgetAlert:
    """A monthly budget crossed; ``repo`` is ``"*"`` for the global budget."""

    month: str
    repo: str
    limit_usd: float
    spend_usd: float


@dataclass(frozen=True)
class TierStats:
    """Spend, savings and hit rate of one repo and tier (``"*"`` rows aggregate)."""

    repo: str
    tier: str
    requests: int
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    spend_usd: float
    shadow_spend_usd: float
    audit_spend_usd: float  # the cache's audit calls and judge questions
    hits: int
    saved_usd: float

    @property
    def hit_rate(self) -> float:
        """Cache hits over hits plus routed requests (0 when there was no traffic)."""
        total = self.hits + self.requests
        return self.hits / total if total else 0.0


@dataclass(frozen=True)
class LabelledPrompt:
    """A prompt with the tier it should have gone to (from the examples file or feedback)."""

    prompt: str
    tier: str


def month_of(ts: float) -> str:
    """The UTC calendar month of a UNIX time, as ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(ts))


class Ledger:
    """The router's accounting: every call, every saving, budgets and the routing log."""

    def __init__(
        self,
        path: str | Path,
        registry: Registry,
        metrics: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        # The sidecar may record from worker threads; the lock serialises writes on one connection.
        self._db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._create_tables()
        self.metrics = metrics or CollectorRegistry()
        self._series = LedgerMetrics(self.metrics, registry.budgets)

    @property
    def budgets(self) -> Budgets:
        """The monthly budgets in force."""
        return self._registry.budgets

    def record_call(self, record: CallRecord) -> list[BudgetAlert]:
        """Store one attempt; returns the budget alerts this call newly crossed."""
        now = self._clock()
        with self._lock:
            self._db["calls"].insert({**asdict(record), "ts": now, "month": month_of(now)})
        self._series.count(record)
        return self._check_budgets(record.repo, month_of(now)) if record.cost_usd > 0 else []

    def record_saving(self, repo: str, **priced: Any) -> float:
        """Record a cache hit at once; the saving is priced as :meth:`price_saving` prices it."""
        row = self.price_saving(repo, **priced)
        self.record_savings([row])
        return row["saved_usd"]

    def price_saving(
        self,
        repo: str,
        *,
        model: str | None = None,
        tier: str | None = None,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
    ) -> dict[str, Any]:
        """The ledger row of a cache hit, priced at ``model`` (default: ``tier``'s first model), without
        writing it: a caller on a hot path books rows later, in batches (:meth:`record_savings`)."""
        tier_name = tier or (self._registry.model(model).tier if model else self._registry.default_tier)
        spec = self._registry.model(model or self._registry.tier(tier_name).model)
        saved = spec.cost_usd(input_tokens, output_tokens, cached_tokens)
        now = self._clock()
        row = {"ts": now, "month": month_of(now), "repo": repo, "tier": tier_name, "model": spec.id}
        return row | {"input_tokens": input_tokens, "output_tokens": output_tokens, "saved_usd": saved}

    def record_savings(self, rows: list[dict[str, Any]]) -> None:
        """Book priced cache hits (:meth:`price_saving`) in one transaction."""
        if rows:
            with self._lock:
                self._db["savings"].insert_all(rows)

    def record_route(
        self, request_id: str, repo: str, tier: str, model: str, confidence: float, source: str, prompt: str
    ) -> None:
        """Log a routing decision (``prompt`` is empty when the registry turns prompt logging off)."""
        row = {"request_id": request_id, "ts": self._clock(), "repo": repo, "tier": tier, "model": model}
        row |= {"confidence": confidence, "source": source, "prompt": prompt, "feedback_tier": None}
        with self._lock:
            self._db["routes"].insert(row, pk="request_id", replace=True)

    def record_feedback(self, request_id: str, tier: str) -> bool:
        """Mark the tier a logged request should have gone to; False when the id is unknown."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE routes SET feedback_tier = ? WHERE request_id = ?", [tier, request_id]
            )
            self._db.conn.commit()
        return cursor.rowcount > 0

    def feedback_examples(self) -> list[LabelledPrompt]:
        """Logged prompts that carry a feedback tier, as training examples."""
        sql = "SELECT prompt, feedback_tier FROM routes WHERE feedback_tier IS NOT NULL AND prompt != ''"
        return [LabelledPrompt(p, t) for p, t in self._db.execute(sql).fetchall()]

    def record_shadow(self, record: ShadowRecord) -> None:
        """Store a shadow comparison."""
        with self._lock:
            self._db["shadow"].insert({**asdict(record), "ts": self._clock()})

    def shadow_records(self, repo: str | None = None) -> list[ShadowRecord]:
        """Stored shadow comparisons, oldest first."""
        where, args = ("repo = ?", [repo]) if repo else (None, None)
        fields = ShadowRecord.__dataclass_fields__
        return [
            ShadowRecord(**{k: v for k, v in row.items() if k in fields})
            for row in self._db["shadow"].rows_where(where, args, order_by="ts")
        ]

    def calls(self, request_id: str | None = None) -> list[CallRecord]:
        """Stored attempts, oldest first (all of them, or one request's)."""
        where, args = ("request_id = ?", [request_id]) if request_id else (None, None)
        fields = CallRecord.__dataclass_fields__
        return [
            CallRecord(**{k: v for k, v in row.items() if k in fields})
            for row in self._db["calls"].rows_where(where, args, order_by="rowid")
        ]

    def month_spend_usd(self, repo: str | None = None, month: str | None = None) -> float:
        """Spend (routed and shadow calls) in ``month`` (default: this month), for one repo or all."""
        month = month or month_of(self._clock())
        sql = "SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE month = ?"
        args: list[str] = [month]
        if repo is not None:
            sql += " AND repo = ?"
            args.append(repo)
        return float(self._db.execute(sql, args).fetchone()[0])

    def alerts(self) -> list[BudgetAlert]:
        """Every budget alert raised so far."""
        return [
            BudgetAlert(r["month"], r["repo"], r["limit_usd"], r["spend_usd"])
            for r in self._db["alerts"].rows
        ]

    def stats(self, repo: str | None = None, month: str | None = None) -> list[TierStats]:
        """Per repo and tier: requests, calls, tokens, spend, savings, hits (optionally one repo/month)."""
        filters, args = [], []
        if repo is not None:
            filters.append("repo = ?")
            args.append(repo)
        if month is not None:
            filters.append("month = ?")
            args.append(month)
        where = f"WHERE {' AND '.join(filters)}" if filters else ""
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for row in self._db.execute(_CALL_STATS_SQL.format(where=where), args).fetchall():
            rows[(row[0], row[1])] = dict(zip(_CALL_COLUMNS, row[2:], strict=True))
        for r, t, hits, saved in self._db.execute(_SAVING_STATS_SQL.format(where=where), args).fetchall():
            rows.setdefault((r, t), dict.fromkeys(_CALL_COLUMNS, 0))
            rows[(r, t)] |= {"hits": hits, "saved_usd": saved}
        return [_tier_stats(r, t, values) for (r, t), values in sorted(rows.items())]

    def close(self) -> None:
        """Close the database connection."""
        self._db.conn.close()

    def _check_budgets(self, repo: str, month: str) -> list[BudgetAlert]:
        alerts = []
        for scope, limit in (
            (repo, self.budgets.for_repo(repo)),
            (GLOBAL_SCOPE, self.budgets.global_monthly_usd),
        ):
            spend = self.month_spend_usd(None if scope == GLOBAL_SCOPE else scope, month)
            self._series.month_spend.labels(repo=scope).set(spend)
            if limit is None or spend < limit or self._alerted(scope, month):
                continue
            alert = BudgetAlert(month, scope, limit, spend)
            with self._lock:
                self._db["alerts"].insert(asdict(alert) | {"ts": self._clock()})
            self._series.alerts.labels(repo=scope).inc()
            log.warning(
                "budget crossed: repo=%s month=%s spend=%.6g limit=%.6g USD", scope, month, spend, limit
            )
            alerts.append(alert)
        return alerts

    def _alerted(self, scope: str, month: str) -> bool:
        return self._db["alerts"].count_where("repo = ? AND month = ?", [scope, month]) > 0

    def _create_tables(self) -> None:
        db = self._db
        db["calls"].create(
            {
                "ts": float,
                "month": str,
                "request_id": str,
                "repo": str,
                "tier": str,
                "model": str,
                "kind": str,
                "outcome": str,
                "latency_ms": float,
                "input_tokens": int,
                "output_tokens": int,
                "cached_tokens": int,
                "cost_usd": float,
                "error": str,
            },
            if_not_exists=True,
        )
        db["calls"].create_index(["repo", "month"], if_not_exists=True)
        db["savings"].create(
            {
                "ts": float,
                "month": str,
                "repo": str,
                "tier": str,
                "model": str,
                "input_tokens": int,
                "output_tokens": int,
                "saved_usd": float,
            },
            if_not_exists=True,
        )
        db["routes"].create(
            {
                "request_id": str,
                "ts": float,
                "repo": str,
                "tier": str,
                "model": str,
                "confidence": float,
                "source": str,
                "prompt": str,
                "feedback_tier": str,
            },
            pk="request_id",
            if_not_exists=True,
        )
        db["shadow"].create(
            {**dict.fromkeys(ShadowRecord.__dataclass_fields__, str), "ts": float}
            | dict.fromkeys(
                ["primary_latency_ms", "candidate_latency_ms", "primary_cost_usd", "candidate_cost_usd"],
                float,
            ),
            if_not_exists=True,
        )
        db["alerts"].create(
            {"month": str, "repo": str, "limit_usd": float, "spend_usd": float, "ts": float},
            if_not_exists=True,
        )


_CALL_COLUMNS = (
    "requests",
    "calls",
    "failed_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "spend_usd",
    "shadow_spend_usd",
    "audit_spend_usd",
)
_CALL_STATS_SQL = """
SELECT repo, tier,
  COUNT(DISTINCT CASE WHEN kind = 'route' AND outcome = 'ok' THEN request_id END),
  SUM(kind = 'route'), SUM(kind = 'route' AND outcome != 'ok'),
  SUM(CASE WHEN kind = 'route' THEN input_tokens ELSE 0 END),
  SUM(CASE WHEN kind = 'route' THEN output_tokens ELSE 0 END),
  SUM(CASE WHEN kind = 'route' THEN cached_tokens ELSE 0 END),
  SUM(CASE WHEN kind = 'route' THEN cost_usd ELSE 0 END), SUM(CASE WHEN kind = 'shadow' THEN cost_usd ELSE 0 END),
  SUM(CASE WHEN kind IN ('audit', 'judge') THEN cost_usd ELSE 0 END)
FROM calls {where} GROUP BY repo, tier
"""
_SAVING_STATS_SQL = "SELECT repo, tier, COUNT(*), SUM(saved_usd) FROM savings {where} GROUP BY repo, tier"


def total_stats(rows: list[TierStats], repo: str = GLOBAL_SCOPE, tier: str = GLOBAL_SCOPE) -> TierStats:
    """Sum per-tier rows into one (``"*"`` marks an aggregated repo or tier)."""
    sums = {name: sum(getattr(r, name) for r in rows) for name in (*_CALL_COLUMNS, "hits", "saved_usd")}
    return _tier_stats(repo, tier, sums)


def _tier_stats(repo: str, tier: str, values: dict[str, float]) -> TierStats:
    return TierStats(
        repo=repo,
        tier=tier,
        requests=int(values["requests"] or 0),
        calls=int(values["calls"] or 0),
        failed_calls=int(values["failed_calls"] or 0),
        input_tokens=int(values["input_tokens"] or 0),
        output_tokens=int(values["output_tokens"] or 0),
        cached_tokens=int(values["cached_tokens"] or 0),
        spend_usd=float(values["spend_usd"] or 0.0),
        shadow_spend_usd=float(values["shadow_spend_usd"] or 0.0),
        audit_spend_usd=float(values.get("audit_spend_usd", 0.0) or 0.0),
        hits=int(values.get("hits", 0) or 0),
        saved_usd=float(values.get("saved_usd", 0.0) or 0.0),
    )
