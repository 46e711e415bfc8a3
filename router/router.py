"""Router: classify → choose a tier → call its model → fall back along the chain → record in the ledger."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from router.breaker import BreakerSnapshot, CircuitBreaker
from router.classifier import Classification, Embed, TierClassifier, TrainedTierModel
from router.errors import RequestError, RouterError, RoutingFailed, UpstreamError
from router.execute import CONTEXT_TOO_SMALL, Attempt, ModelSkipped, call_model
from router.ledger import CallRecord, Ledger
from router.registry import ModelSpec, Registry, load_registry
from router.results import BatchItem, RouteMeta, RouteResult, Usage
from router.shadow import ShadowRunner
from router.streaming import first_chunk, relay_stream
from router.tokens import estimate_request_tokens, message_text
from router.upstream import OpenAIUpstream

_PROMPT_LOG_CHARS = 4000


class Router:
    """Sends each request to the cheapest suitable tier, survives provider failures, accounts for tokens.

    Build it with :meth:`from_config` (or the constructor, for tests), use it from one event loop, and
    ``await aclose()`` when done.
    """

    def __init__(
        self,
        registry: Registry,
        ledger: Ledger,
        *,
        api_keys: Mapping[str, str] | None = None,
        classifier: TierClassifier | None = None,
        metrics: CollectorRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.ledger = ledger
        self.metrics = metrics or ledger.metrics
        self.classifier = classifier or TierClassifier(
            list(registry.tiers), registry.default_tier, registry.min_confidence, registry.intent_tiers
        )
        keys = dict(api_keys or {})
        self._upstreams = {
            spec.id: OpenAIUpstream(spec.base_url, keys.get(spec.id, ""), spec.timeout_s)
            for spec in registry.models.values()
        }
        self._breakers = {m: CircuitBreaker(m, registry.breaker) for m in registry.models}
        self._rng = rng or random.Random()
        self._shadow = ShadowRunner(ledger, self._rng)

    @classmethod
    def from_config(
        cls,
        registry_path: str | Path,
        ledger_path: str | Path,
        *,
        classifier_path: str | Path | None = None,
        embed: Embed | None = None,
        environ: Mapping[str, str] | None = None,
        seed: int | None = None,
    ) -> Router:
        """Build a router from a registry TOML file and a ledger SQLite path.

        API keys are read now, from the env var each model names (``environ`` defaults to
        ``os.environ``). The trained classifier is used when a model file is configured (argument or
        registry) and ``embed`` is given; otherwise the heuristic classifies.
        """
        registry = load_registry(registry_path)
        metrics = CollectorRegistry()
        ledger = Ledger(ledger_path, registry, metrics)
        model_path = classifier_path or registry.classifier_path
        trained = TrainedTierModel.load(model_path) if model_path and embed is not None else None
        classifier = TierClassifier(
            list(registry.tiers),
            registry.default_tier,
            registry.min_confidence,
            registry.intent_tiers,
            trained=trained,
            embed=embed,
        )
        return cls(
            registry,
            ledger,
            api_keys=registry.api_keys(environ),
            classifier=classifier,
            metrics=metrics,
            rng=random.Random(seed),
        )

    def classify(self, body: Mapping[str, Any]) -> Classification:
        """The tier the router would pick for ``body`` (no call is made)."""
        return self.classifier.classify(body)

    async def route(
        self,
        body: Mapping[str, Any],
        *,
        repo: str,
        tier: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        kind: str = "route",
    ) -> RouteResult:
        """Answer a non-streaming chat request; raises :class:`RoutingFailed` when no model answered.

        ``kind`` is how the ledger books the call: "route" for a client's request; "audit" or "judge"
        for the cache's own checks (booked apart, never counted as requests, never shadowed)."""
        request_id = request_id or uuid.uuid4().hex
        started = time.monotonic()
        classification, chain = await self._plan(body, request_id, repo, tier, model)
        attempts: list[Attempt] = []
        spec, completion = await self._walk_chain(
            chain, attempts, body, repo, classification, request_id, kind=kind
        )
        usage = Usage.from_provider(completion.get("usage"), body, _content(completion))
        cost = spec.cost_usd(usage.input_tokens, usage.output_tokens, usage.cached_tokens)
        self._record(request_id, repo, classification.tier, attempts, usage, cost, kind)
        result = RouteResult(
            request_id=request_id,
            completion=completion,
            tier=classification.tier,
            model=spec.id,
            classification=classification,
            attempts=tuple(attempts),
            usage=usage,
            cost_usd=cost,
            latency_ms=(time.monotonic() - started) * 1000.0,
        )
        if kind == "route":
            self._maybe_shadow(body, repo, result)
        return result

    async def route_stream(
        self,
        body: Mapping[str, Any],
        *,
        repo: str,
        tier: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
    ) -> tuple[RouteMeta, AsyncIterator[dict[str, Any]]]:
        """Start a streaming answer; fallback happens only until the first chunk has arrived.

        Returns the route's metadata and the chunk iterator (the first chunk included). An error after
        the first chunk is raised from the iterator as an :class:`UpstreamError`; no fallback follows.
        """
        request_id = request_id or uuid.uuid4().hex
        classification, chain = await self._plan(body, request_id, repo, tier, model)
        attempts: list[Attempt] = []

        def opener(spec: ModelSpec) -> Any:
            return first_chunk(self._upstreams[spec.id], self._body_for(body, spec))

        spec, (first, rest) = await self._walk_chain(
            chain, attempts, body, repo, classification, request_id, opener
        )
        meta = RouteMeta(request_id, classification.tier, spec.id, classification, attempts)
        chunks = relay_stream(
            meta, spec, self._breakers[spec.id], first, rest, body, self._stream_finisher(repo)
        )
        return meta, chunks

    async def batch(
        self,
        bodies: Sequence[Mapping[str, Any]],
        *,
        repo: str,
        tier: str | None = None,
        model: str | None = None,
        concurrency: int = 8,
    ) -> list[BatchItem]:
        """Route many requests, at most ``concurrency`` at a time; one item's failure never sinks the rest."""
        if concurrency < 1:
            raise RequestError("concurrency must be at least 1")
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, body: Mapping[str, Any]) -> BatchItem:
            async with gate:
                try:
                    return BatchItem(index, result=await self.route(body, repo=repo, tier=tier, model=model))
                except RouterError as exc:
                    return BatchItem(index, error=exc)
                except Exception as exc:  # a bug in one item must not lose the other items' answers
                    error = RouterError(f"unexpected error: {exc!r}")
                    error.__cause__ = exc
                    return BatchItem(index, error=error)

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))

    def breaker_states(self) -> list[BreakerSnapshot]:
        """Each model's circuit breaker state."""
        return [b.snapshot() for b in self._breakers.values()]

    async def drain(self) -> None:
        """Wait for shadow calls still in flight (tests and shutdown)."""
        await self._shadow.drain()

    async def aclose(self) -> None:
        """Finish shadow calls, close provider connections and the ledger."""
        await self.drain()
        for upstream in self._upstreams.values():
            await upstream.aclose()
        self.ledger.close()

    async def _plan(
        self, body: Mapping[str, Any], request_id: str, repo: str, tier: str | None, model: str | None
    ) -> tuple[Classification, list[ModelSpec]]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("request has no messages")
        if model is not None:
            if model not in self.registry.models:
                raise RequestError(
                    f"unknown model {model!r} (known: {', '.join(sorted(self.registry.models))})"
                )
            classification = Classification(self.registry.models[model].tier, 1.0, "forced_model")
            chain = self.registry.chain(model)
        else:
            if tier is not None and tier not in self.registry.tiers:
                raise RequestError(f"unknown tier {tier!r} (known: {', '.join(self.registry.tiers)})")
            classification = (
                Classification(tier, 1.0, "forced_tier")
                if tier is not None
                else await asyncio.to_thread(self.classifier.classify, body)
            )
            chain = self.registry.chain(self.registry.tiers[classification.tier].model)
        prompt = message_text(messages[-1])[:_PROMPT_LOG_CHARS] if self.registry.log_prompts else ""
        self.ledger.record_route(
            request_id,
            repo,
            classification.tier,
            chain[0].id,
            classification.confidence,
            classification.source,
            prompt,
        )
        return classification, chain

    async def _walk_chain(
        self,
        chain: list[ModelSpec],
        attempts: list[Attempt],
        body: Mapping[str, Any],
        repo: str,
        classification: Classification,
        request_id: str,
        opener: Any = None,
        kind: str = "route",
    ) -> tuple[ModelSpec, Any]:
        needed = estimate_request_tokens(body)
        last: UpstreamError | None = None
        for spec in chain:
            if needed > spec.max_context_tokens:
                reason = f"~{needed} tokens needed, window {spec.max_context_tokens}"
                attempts.append(Attempt(spec.id, CONTEXT_TOO_SMALL, 0.0, 400, reason))
                continue
            upstream, spec_body = self._upstreams[spec.id], self._body_for(body, spec)

            def operation(s: ModelSpec = spec, u: OpenAIUpstream = upstream, b: dict = spec_body) -> Any:
                return opener(s) if opener is not None else u.complete(b)

            try:
                result = await call_model(
                    spec, self._breakers[spec.id], self.registry.retry, operation, attempts, self._rng
                )
                return spec, result
            except ModelSkipped:
                continue
            except UpstreamError as exc:
                last = exc
                if not exc.retryable:
                    break
        self._record(request_id, repo, classification.tier, attempts, None, 0.0, kind)
        raise _chain_error(chain, attempts, last)

    def _record(
        self,
        request_id: str,
        repo: str,
        tier: str,
        attempts: list[Attempt],
        usage: Usage | None,
        cost: float,
        kind: str = "route",
    ) -> None:
        """Write every attempt that reached a provider; the last one carries the answer's usage and cost."""
        for i, attempt in enumerate(attempts):
            if not attempt.reached_provider:
                continue
            final = i == len(attempts) - 1 and usage is not None
            tokens = usage if final and usage is not None else Usage(0, 0)
            self.ledger.record_call(
                CallRecord(
                    request_id=request_id,
                    repo=repo,
                    tier=tier,
                    model=attempt.model,
                    outcome=attempt.outcome,
                    latency_ms=attempt.latency_ms,
                    input_tokens=tokens.input_tokens,
                    output_tokens=tokens.output_tokens,
                    cached_tokens=tokens.cached_tokens,
                    cost_usd=cost if final else 0.0,
                    kind=kind,
                    error=attempt.error,
                )
            )

    def _stream_finisher(self, repo: str) -> Callable[[RouteMeta], None]:
        def finish(meta: RouteMeta) -> None:
            self._record(meta.request_id, repo, meta.tier, meta.attempts, meta.usage, meta.cost_usd or 0.0)

        return finish

    def _maybe_shadow(self, body: Mapping[str, Any], repo: str, result: RouteResult) -> None:
        spec = self.registry.tiers[result.tier]
        if spec.shadow_model is None or spec.shadow_model == result.model:
            return
        candidate = self.registry.models[spec.shadow_model]
        upstream = self._upstreams[candidate.id]
        self._shadow.maybe_start(
            spec.shadow_share, candidate, upstream, self._body_for(body, candidate), body, repo, result
        )

    @staticmethod
    def _body_for(body: Mapping[str, Any], spec: ModelSpec) -> dict[str, Any]:
        return {**body, "model": spec.upstream_name}


def _content(completion: Mapping[str, Any]) -> str:
    choices = completion.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


def _chain_error(
    chain: list[ModelSpec], attempts: list[Attempt], last: UpstreamError | None
) -> RoutingFailed:
    tried = ", ".join(f"{a.model}:{a.outcome}" for a in attempts) or "none"
    if last is not None and not last.retryable:
        return RoutingFailed(
            f"{last.message} (not retried; chain stopped) [attempts: {tried}]",
            status=last.status,
            retryable=False,
            attempts=list(attempts),
            kind=last.kind,
        )
    if last is None and attempts and all(a.outcome == CONTEXT_TOO_SMALL for a in attempts):
        return RoutingFailed(
            f"request does not fit any model of the chain [attempts: {tried}]",
            status=400,
            retryable=False,
            attempts=list(attempts),
            kind="context_length_exceeded",
        )
    names = " -> ".join(s.id for s in chain)
    # A breaker may open during a model's retries: report the last error a provider actually gave.
    called = [a for a in attempts if a.reached_provider]
    status = last.status if last is not None else (called[-1].status or 503) if called else 503
    kind = last.kind if last is not None else called[-1].outcome if called else "all_models_unavailable"
    return RoutingFailed(
        f"every model of the chain {names} failed [attempts: {tried}]",
        status=status,
        retryable=True,
        attempts=list(attempts),
        retry_after_s=last.retry_after_s if last is not None else None,
        kind=kind,
    )
