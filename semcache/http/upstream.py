"""The miss path: adapters that give the gateway's :class:`~semcache.http.chat.Upstream` shape to the
router package's pieces. Part of the composition layer, like ``server.py`` and ``cli.py``.

``DirectUpstream`` forwards every miss to one endpoint (no router configured); ``RoutedUpstream``
sends misses through the tiered router (what hits saved is booked by :mod:`semcache.http.savings`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from router import Router, TierStats, total_stats
from router.upstream import OpenAIUpstream
from semcache.config import Settings
from semcache.embedding import Embedder
from semcache.errors import ConfigError
from semcache.http.chat import Answer, StreamAnswer
from semcache.http.judges import EmbeddingJudge, ExactJudge, Judge, LLMJudge


class DirectUpstream:
    """Every miss goes to one configured OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self._client = OpenAIUpstream(base_url, api_key, timeout_s)

    async def complete(self, body: dict[str, Any], repo: str, tier: str | None = None) -> Answer:
        """Forward a chat request."""
        return Answer(await self._client.complete(body))

    async def stream(self, body: dict[str, Any], repo: str, tier: str | None = None) -> StreamAnswer:
        """Forward a streaming chat request."""
        return StreamAnswer(await self._client.stream(body))

    async def audit(self, body: dict[str, Any], repo: str, tier: str | None = None) -> dict[str, Any]:
        """Ask the endpoint again (no ledger to book it in)."""
        return await self._client.complete(body)

    async def judge(self, body: dict[str, Any], repo: str) -> dict[str, Any]:
        """Ask the llm judge's question of the endpoint (the body names ``audit_judge_model``)."""
        return await self._client.complete(body)

    def spend(self, repo: str | None) -> list[TierStats]:
        """No ledger without a router."""
        return []

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class RoutedUpstream:
    """Misses go through the tiered router; ``model`` in ``aliases`` lets the classifier pick the tier."""

    def __init__(self, router: Router, aliases: list[str]) -> None:
        self.router = router
        self._aliases = frozenset(aliases)
        # The model name that lets the router pick (the judge forces its tier anyway).
        self.alias = aliases[0] if aliases else "auto"

    def _target(self, body: dict[str, Any], tier: str | None) -> dict[str, str | None]:
        model = str(body.get("model"))
        return {"tier": tier, "model": None if model in self._aliases else model}

    async def complete(self, body: dict[str, Any], repo: str, tier: str | None = None) -> Answer:
        """Route a chat request; headers name tier, model, attempts and cost."""
        result = await self.router.route(body, repo=repo, **self._target(body, tier))
        headers = _route_headers(result.tier, result.model, len(result.attempts))
        headers["X-Semcache-Cost-Usd"] = f"{result.cost_usd:.6f}"
        return Answer(result.completion, headers, model=result.model)

    async def stream(self, body: dict[str, Any], repo: str, tier: str | None = None) -> StreamAnswer:
        """Route a streaming request (fallback only before the first chunk)."""
        meta, chunks = await self.router.route_stream(body, repo=repo, **self._target(body, tier))
        headers = _route_headers(meta.tier, meta.model, len(meta.attempts))
        return StreamAnswer(_closing(chunks), headers, model=meta.model)

    async def audit(self, body: dict[str, Any], repo: str, tier: str | None = None) -> dict[str, Any]:
        """Route the request again as the client's would be, booked as audit spend."""
        result = await self.router.route(body, repo=repo, kind="audit", **self._target(body, tier))
        return result.completion

    async def judge(self, body: dict[str, Any], repo: str) -> dict[str, Any]:
        """Ask the cheapest tier the judge's question, booked as audit spend."""
        tier = self.router.registry.cheapest_tier
        result = await self.router.route(body, repo=repo, tier=tier, kind="judge")
        return result.completion

    def spend(self, repo: str | None) -> list[TierStats]:
        """Spend, savings and hits per repo and tier, from the ledger."""
        return self.router.ledger.stats(repo)

    async def aclose(self) -> None:
        """Wait for shadow calls and close the router's clients and ledger."""
        await self.router.drain()
        await self.router.aclose()


def _route_headers(tier: str, model: str, attempts: int) -> dict[str, str]:
    return {"X-Semcache-Tier": tier, "X-Semcache-Model": model, "X-Semcache-Attempts": str(attempts)}


async def _closing(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    # The router writes a stream to its ledger only when the iterator is finished or closed.
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()


def spend_summary(rows: list[TierStats]) -> dict[str, Any]:
    """Ledger rows as JSON: per tier and the total."""

    def one(row: TierStats) -> dict[str, Any]:
        return {
            "tier": row.tier,
            "requests": row.requests,
            "spend_usd": row.spend_usd,
            "audit_spend_usd": row.audit_spend_usd,
            "saved_usd": row.saved_usd,
            "hits": row.hits,
        }

    return {"tiers": [one(r) for r in rows], "total": one(total_stats(rows)) if rows else None}


def build_upstream(settings: Settings, embedder: Embedder) -> DirectUpstream | RoutedUpstream:
    """The miss path the settings ask for: the tiered router if configured, else one endpoint."""
    if settings.router_config is None:
        return DirectUpstream(
            settings.upstream_base_url, settings.upstream_api_key(), settings.upstream_timeout_s
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    router = Router.from_config(
        settings.router_config,
        settings.ledger_path,
        classifier_path=settings.router_classifier,
        embed=embedder.encode,
    )
    return RoutedUpstream(router, settings.router_aliases)


def build_judge(settings: Settings, upstream: object, embedder: Embedder) -> Judge:
    """The audit's judge the settings ask for (see :meth:`Settings.judge_name`)."""
    name = settings.judge_name(isinstance(upstream, RoutedUpstream))
    if name == "exact":
        return ExactJudge()
    if name == "embedding":
        return EmbeddingJudge(embedder)
    if isinstance(upstream, RoutedUpstream):
        return LLMJudge(upstream.judge, upstream.alias)
    if settings.audit_judge_model is None or not isinstance(upstream, DirectUpstream):
        raise ConfigError(
            "SEMCACHE_AUDIT_JUDGE=llm needs the router (SEMCACHE_ROUTER_CONFIG) or, with one upstream, "
            "the model to ask (SEMCACHE_AUDIT_JUDGE_MODEL, e.g. gpt-4o-mini)"
        )
    return LLMJudge(upstream.judge, settings.audit_judge_model)
