"""The request flow behind ``/v1/chat/completions``: look up, answer from the cache or go upstream,
store what may be stored. Streaming hits are replayed as SSE; streaming misses pass through and are
stored only after the upstream stream finished successfully (the entry's id then comes as an SSE
comment, ``: X-Semcache-Entry-Id: N``, before ``[DONE]``: the headers were sent long before).

The miss path is any :class:`Upstream`; the server wires in the real one (see ``semcache.http.upstream``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio.to_thread

from semcache.cache.semantic import CacheHit, Lookup, SemanticCache, is_cacheable
from semcache.http.metrics import SidecarMetrics
from semcache.http.recent import RecentActivity
from semcache.keys import CacheRequest

if TYPE_CHECKING:  # the auditor needs the cache; the gateway only calls it
    from semcache.http.audit import Auditor
    from semcache.http.savings import SavingsBook


@dataclass(frozen=True)
class Answer:
    """A complete upstream answer and the headers describing how it was obtained."""

    completion: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # the model id that answered, when the upstream knows it


@dataclass(frozen=True)
class StreamAnswer:
    """A started upstream stream of chat.completion.chunk dicts, and its headers."""

    chunks: AsyncIterator[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None


class Upstream(Protocol):
    """Where misses go. Errors raise before :meth:`stream` returns if no byte was received yet."""

    async def complete(self, body: dict[str, Any], repo: str, tier: str | None = None) -> Answer:
        """Answer a chat request (``tier`` forces a tier where the upstream has tiers)."""
        ...

    async def stream(self, body: dict[str, Any], repo: str, tier: str | None = None) -> StreamAnswer:
        """Start streaming an answer to a chat request."""
        ...

    async def audit(self, body: dict[str, Any], repo: str, tier: str | None = None) -> dict[str, Any]:
        """A fresh answer for the audit of a hit, booked as audit spend where a ledger is kept."""
        ...

    def spend(self, repo: str | None) -> list[Any]:
        """Spend and savings per tier (empty where the upstream keeps no ledger)."""
        ...


@dataclass(frozen=True)
class CacheStatus:
    """What the cache did for one request; becomes the ``X-Semcache-*`` response headers."""

    state: Literal["hit-exact", "hit-semantic", "miss", "bypass"]
    similarity: float | None = None
    entry_id: int | None = None
    score: float | None = None
    uncalibrated: bool = False

    @classmethod
    def of(cls, lookup: Lookup, request: CacheRequest) -> CacheStatus:
        """Describe a lookup's outcome."""
        if lookup.hit is not None:
            hit = lookup.hit
            return cls(f"hit-{hit.kind}", hit.similarity, hit.entry.id, hit.score)  # type: ignore[arg-type]
        if request.options.no_cache or not request.cacheable:
            return cls("bypass")
        return cls("miss", uncalibrated=lookup.uncalibrated)

    def headers(self) -> dict[str, str]:
        """Response headers for this status."""
        headers = {"X-Semcache": self.state}
        if self.similarity is not None:
            headers["X-Semcache-Similarity"] = f"{self.similarity:.4f}"
        if self.entry_id is not None:
            headers["X-Semcache-Entry-Id"] = str(self.entry_id)
        if self.score is not None:
            headers["X-Semcache-Score"] = f"{self.score:.4f}"
        if self.uncalibrated:
            # No threshold holds the budget asked for (none calibrated that strict, or the repo's own
            # labels say none does): exact hits only.
            headers["X-Semcache-Semantic"] = "off: no calibrated threshold holds this budget"
        return headers


@dataclass(frozen=True)
class Reply:
    """A complete response for the client."""

    completion: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class StreamReply:
    """A streaming (SSE) response for the client."""

    events: AsyncIterator[bytes]
    headers: dict[str, str]


class Gateway:
    """Cache first, upstream on a miss, store the answer."""

    def __init__(
        self,
        cache: SemanticCache,
        upstream: Upstream,
        metrics: SidecarMetrics | None = None,
        auditor: Auditor | None = None,
        savings: SavingsBook | None = None,
        recent: RecentActivity | None = None,
    ) -> None:
        self.cache = cache
        self.upstream = upstream
        self.metrics = metrics or SidecarMetrics()
        self.auditor = auditor
        self.savings = savings
        self.recent = recent or RecentActivity()  # the dashboard's latest hits and per-minute counts

    def spend(self, repo: str | None) -> list[Any]:
        """Spend and savings per tier, with the savings of the latest hits booked (blocking)."""
        if self.savings is not None:
            self.savings.flush()
        return self.upstream.spend(repo)

    async def chat(self, request: CacheRequest) -> Reply:
        """Answer a non-streaming request."""
        lookup, headers = await self._lookup(request)
        if lookup.hit is not None:
            return Reply(served_from_cache(lookup.hit), headers)
        answer = await self._ask("complete", self.upstream.complete, request)
        self.metrics.observe_answer(request.repo)
        entry_id = await anyio.to_thread.run_sync(
            self.cache.store,
            request,
            answer.completion,
            lookup.embedding,
            answer.model,
            lookup.tokens,
            lookup.epoch,
        )
        self._after_miss(request, lookup, answer.completion)
        if entry_id is not None:  # the entry this miss made, to delete or report without a lookup
            headers["X-Semcache-Entry-Id"] = str(entry_id)
        return Reply(answer.completion, {**headers, **answer.headers})

    async def _ask(self, kind: str, call: Callable[..., Awaitable[Any]], request: CacheRequest) -> Any:
        """Ask the upstream (``complete`` or ``stream``), timing it; a failure is counted and raised."""
        started = time.perf_counter()
        try:
            answer = await call(request.body, request.repo, request.options.tier)
        except Exception as exc:
            self.metrics.observe_upstream(kind, time.perf_counter() - started, failed=True)
            self.metrics.observe_answer(request.repo, exc)
            raise
        self.metrics.observe_upstream(kind, time.perf_counter() - started)
        return answer

    def _after_miss(self, request: CacheRequest, lookup: Lookup, completion: dict[str, Any]) -> None:
        if self.auditor is not None and is_cacheable(completion):
            self.auditor.after_miss(request, lookup.near, completion)

    async def chat_stream(self, request: CacheRequest) -> StreamReply:
        """Answer a streaming request: replay a hit, or pass the upstream stream through."""
        lookup, headers = await self._lookup(request)
        if lookup.hit is not None:
            return StreamReply(replay(served_from_cache(lookup.hit)), headers)
        answer = await self._ask("stream", self.upstream.stream, request)
        events = self._pass_through(request, answer, lookup)
        return StreamReply(events, {**headers, **answer.headers})

    async def _lookup(self, request: CacheRequest) -> tuple[Lookup, dict[str, str]]:
        """Look the request up off the event loop; a hit is priced here (what it saved)."""
        started = time.perf_counter()
        lookup = await anyio.to_thread.run_sync(self.cache.lookup, request)
        status = CacheStatus.of(lookup, request)
        self.metrics.observe_lookup(status.state, time.perf_counter() - started, request.repo)
        self.recent.record(request.repo, status.state, request.prompt, lookup.hit)
        headers = status.headers()
        if lookup.hit is not None:
            entry, saved = lookup.hit.entry, None
            if self.savings is not None:
                saved = self.savings.hit(entry)
                headers["X-Semcache-Saved-Usd"] = f"{saved:.6f}"
            self.metrics.observe_hit(request.repo, entry.prompt_tokens + entry.completion_tokens, saved)
            if self.auditor is not None and lookup.hit.kind == "semantic":
                self.auditor.after_hit(request, lookup.near)
        return lookup, headers

    async def _pass_through(
        self, request: CacheRequest, answer: StreamAnswer, lookup: Lookup
    ) -> AsyncIterator[bytes]:
        collected = StreamCollector()
        try:
            async for chunk in answer.chunks:
                collected.add(chunk)
                yield sse(chunk)
        except Exception as exc:  # the stream broke after bytes were sent: say so, store nothing
            self.metrics.observe_answer(request.repo, exc)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            yield sse({"error": {"type": "upstream_stream_error", "message": message}})
            return
        self.metrics.observe_answer(request.repo)
        completion = collected.completion()
        entry_id = await anyio.to_thread.run_sync(
            self.cache.store, request, completion, lookup.embedding, answer.model, lookup.tokens, lookup.epoch
        )
        self._after_miss(request, lookup, completion)
        if (
            entry_id is not None
        ):  # an SSE comment: clients and SDKs skip it, a reader of the raw stream sees it
            yield f": X-Semcache-Entry-Id: {entry_id}\n\n".encode()
        yield b"data: [DONE]\n\n"


def served_from_cache(hit: CacheHit) -> dict[str, Any]:
    """The cached completion under a fresh id and timestamp."""
    return {
        **hit.entry.response,
        "id": f"chatcmpl-semcache-{uuid.uuid4().hex[:20]}",
        "created": int(time.time()),
    }


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def replay(completion: dict[str, Any], words_per_chunk: int = 8) -> AsyncIterator[bytes]:
    """Replay a complete answer as chat.completion.chunk events."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion.get("model", ""),
    }
    for choice in completion["choices"]:
        index = choice.get("index", 0)
        words = choice["message"]["content"].split(" ")
        yield sse(
            {
                **base,
                "choices": [
                    {"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
        for start in range(0, len(words), words_per_chunk):
            piece = " ".join(words[start : start + words_per_chunk])
            piece = piece if start == 0 else " " + piece
            yield sse(
                {**base, "choices": [{"index": index, "delta": {"content": piece}, "finish_reason": None}]}
            )
        yield sse(
            {**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    if completion.get("usage"):
        yield sse({**base, "choices": [], "usage": completion["usage"]})
    yield b"data: [DONE]\n\n"


class StreamCollector:
    """Rebuilds a complete chat.completion from streamed chunks."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        """Fold one chunk in."""
        for key in ("id", "created", "model"):
            self.meta.setdefault(key, chunk.get(key))
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for delta_choice in chunk.get("choices") or []:
            choice = self.choices.setdefault(
                delta_choice.get("index", 0), {"content": [], "finish_reason": None, "tool_calls": False}
            )
            delta = delta_choice.get("delta") or {}
            if delta.get("content"):
                choice["content"].append(delta["content"])
            if delta.get("tool_calls") or delta.get("function_call"):
                choice["tool_calls"] = True
            if delta_choice.get("finish_reason"):
                choice["finish_reason"] = delta_choice["finish_reason"]

    def completion(self) -> dict[str, Any]:
        """The chat.completion these chunks add up to."""
        choices = []
        for index, choice in sorted(self.choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(choice["content"])}
            if choice["tool_calls"]:
                message["tool_calls"] = True
            choices.append({"index": index, "message": message, "finish_reason": choice["finish_reason"]})
        completion = {**self.meta, "object": "chat.completion", "choices": choices}
        if self.usage:
            completion["usage"] = self.usage
        return completion
