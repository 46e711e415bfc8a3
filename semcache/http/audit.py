"""The audit: labels from live traffic, made off the serving path.

- A near miss (the best candidate passed the cosine floor but not the threshold): once the upstream's
  answer has been served and stored, the judge compares it with the candidate's cached answer. No extra
  upstream call.
- An audited hit (a share ``audit_rate`` of semantic hits): the cached answer is served at once; the
  upstream is also asked, in the background (booked in the ledger as audit spend), and the judge compares.

Each judged pair becomes a label for the repo's online calibration (``SemanticCache.add_label``). Jobs go
through a bounded queue: when it is full a job is dropped and counted, never waited for. A failing
upstream or judge makes no label.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread

from semcache.cache.semantic import NearMiss, SemanticCache, is_cacheable
from semcache.http.judges import Judge, JudgeFailed, answer_text
from semcache.http.metrics import SidecarMetrics
from semcache.keys import CacheRequest

log = logging.getLogger(__name__)


class AuditUpstream(Protocol):
    """What the audit needs of the miss path: one non-streaming answer, booked as an audit call."""

    async def audit(self, body: dict[str, Any], repo: str, tier: str | None = None) -> dict[str, Any]:
        """A fresh answer to ``body`` (on the tier the request forced, if any), booked as audit spend
        where a ledger is kept."""
        ...


@dataclass(frozen=True)
class _Job:
    repo: str
    prompt: str
    near: NearMiss  # the candidate judged, with its score and cosine
    weight: float
    source: str  # "near_miss" or "audit"
    fresh: dict[str, Any] | None = None  # the upstream's answer (near misses: already there)
    body: dict[str, Any] | None = None  # the request to ask again (audited hits)
    tier: str | None = None  # the tier the request forced


class Auditor:
    """Queues judge jobs and runs them in one background task."""

    def __init__(
        self,
        cache: SemanticCache,
        upstream: AuditUpstream,
        judge: Judge,
        metrics: SidecarMetrics,
        queue_size: int = 256,
        rng: random.Random | None = None,
    ) -> None:
        self._cache = cache
        self._upstream = upstream
        self._judge = judge
        self._metrics = metrics
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (inside the running event loop)."""
        self._task = asyncio.create_task(self._run())

    async def aclose(self) -> None:
        """Stop the background task; queued jobs are dropped (they only ever add labels)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def after_miss(self, request: CacheRequest, near: NearMiss | None, completion: dict[str, Any]) -> None:
        """A miss was answered upstream: judge its near candidate, if it had one."""
        if near is not None and self._cache.audit_rate(request.repo) > 0:
            self._submit(_Job(request.repo, request.prompt, near, 1.0, "near_miss", fresh=completion))

    def after_hit(self, request: CacheRequest, near: NearMiss | None) -> None:
        """A semantic hit was served: audit a share of them."""
        rate = self._cache.audit_rate(request.repo)
        if near is None or rate <= 0 or self._rng.random() >= rate:
            return
        body = {k: v for k, v in request.body.items() if k not in ("stream", "stream_options")}
        job = _Job(
            request.repo, request.prompt, near, 1.0 / rate, "audit", body=body, tier=request.options.tier
        )
        self._submit(job)

    def _submit(self, job: _Job) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.audit_jobs.labels("overflow").inc()
            self._cache.counters.audit(job.repo, "overflow")  # in memory: nothing waits on the store

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._one(job)
            except Exception:  # one bad job must not stop the audit; it makes no label
                log.exception("audit job for repo %s failed", job.repo)
                self._metrics.audit_jobs.labels("failed").inc()
            finally:
                self._queue.task_done()

    async def _one(self, job: _Job) -> None:
        fresh = job.fresh
        if job.body is not None:
            self._cache.counters.audit(job.repo, "audits")
            try:
                fresh = await self._upstream.audit(job.body, job.repo, job.tier)
            except Exception as exc:  # an upstream failure is no label
                log.info("audit call for repo %s failed: %s", job.repo, exc)
                self._metrics.audit_jobs.labels("upstream_failed").inc()
                return
        cached = await anyio.to_thread.run_sync(self._cache.entry_or_none, job.repo, job.near.entry_id)
        if cached is None or fresh is None or not is_cacheable(fresh):  # cut off, a tool call, filtered
            self._metrics.audit_jobs.labels("skipped").inc()
            return
        try:
            same = await self._judge.same(
                job.prompt, answer_text(cached.response), answer_text(fresh), job.repo
            )
        except JudgeFailed as exc:
            log.info("judge %s undecided for repo %s: %s", self._judge.name, job.repo, exc)
            self._metrics.audit_jobs.labels("judge_failed").inc()
            self._cache.counters.audit(job.repo, "judge_failures")
            return
        await anyio.to_thread.run_sync(
            self._cache.add_label, job.repo, cached, job.near, same, job.weight, job.source, self._judge.name
        )
        self._metrics.audit_jobs.labels(job.source).inc()
