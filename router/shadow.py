"""Shadow mode: send a share of a tier's traffic to a candidate model as well, for comparison only.

The candidate runs in the background after the primary answer is ready; its answer, latency and cost
go to the ledger and are never returned. A candidate failure is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from router.errors import UpstreamError
from router.ledger import CallRecord, Ledger, ShadowRecord
from router.registry import ModelSpec
from router.results import RouteResult, Usage
from router.upstream import OpenAIUpstream

log = logging.getLogger(__name__)


class ShadowRunner:
    """Starts shadow calls and keeps track of the ones in flight."""

    def __init__(self, ledger: Ledger, rng: random.Random) -> None:
        self._ledger = ledger
        self._rng = rng
        self._tasks: set[asyncio.Task[None]] = set()

    def maybe_start(
        self,
        share: float,
        candidate: ModelSpec,
        upstream: OpenAIUpstream,
        candidate_body: dict[str, Any],
        body: Mapping[str, Any],
        repo: str,
        primary: RouteResult,
    ) -> bool:
        """Start a shadow call for ``share`` of the requests; returns whether one was started."""
        if share <= 0 or self._rng.random() >= share:
            return False
        task = asyncio.create_task(self._run(candidate, upstream, candidate_body, body, repo, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait until every shadow call in flight has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(
        self,
        candidate: ModelSpec,
        upstream: OpenAIUpstream,
        candidate_body: dict[str, Any],
        body: Mapping[str, Any],
        repo: str,
        primary: RouteResult,
    ) -> None:
        started = time.monotonic()
        answer, error, usage, outcome = "", "", Usage(0, 0), "ok"
        try:
            async with asyncio.timeout(candidate.timeout_s):
                completion = await upstream.complete(candidate_body)
            choices = completion.get("choices") or [{}]
            answer = str((choices[0].get("message") or {}).get("content") or "")
            usage = Usage.from_provider(completion.get("usage"), body, answer)
        except (UpstreamError, TimeoutError) as exc:
            error = getattr(exc, "message", "") or f"timed out after {candidate.timeout_s:g} s"
            outcome = getattr(exc, "kind", "upstream_timeout")
            log.info("shadow call to %s failed: %s", candidate.id, error)
        latency = (time.monotonic() - started) * 1000.0
        cost = candidate.cost_usd(usage.input_tokens, usage.output_tokens, usage.cached_tokens)
        self._ledger.record_call(
            CallRecord(
                request_id=primary.request_id,
                repo=repo,
                tier=primary.tier,
                model=candidate.id,
                outcome=outcome,
                latency_ms=latency,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=cost,
                kind="shadow",
                error=error,
            )
        )
        self._ledger.record_shadow(
            ShadowRecord(
                request_id=primary.request_id,
                repo=repo,
                tier=primary.tier,
                primary_model=primary.model,
                candidate_model=candidate.id,
                primary_answer=primary.content,
                candidate_answer=answer,
                primary_latency_ms=primary.latency_ms,
                candidate_latency_ms=latency,
                primary_cost_usd=primary.cost_usd,
                candidate_cost_usd=cost,
                candidate_error=error,
            )
        )
