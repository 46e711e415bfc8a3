"""Streaming through the router: open a stream up to its first chunk, then relay it and account for it.

Fallback is only possible until the first chunk, because after that bytes have gone to the client; the
router's chain walk therefore treats "stream opened and first chunk received" as the model's success.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from router.breaker import CircuitBreaker
from router.errors import UpstreamError
from router.execute import STREAM_BROKEN, Attempt
from router.registry import ModelSpec
from router.results import RouteMeta, Usage
from router.upstream import OpenAIUpstream

Chunk = dict[str, Any]


async def first_chunk(upstream: OpenAIUpstream, body: dict[str, Any]) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """Open a stream and wait for its first chunk; errors up to here are fallback-able."""
    chunks = await upstream.stream(body)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise UpstreamError(
            "upstream stream ended before its first chunk", status=502, retryable=True, kind="upstream_error"
        ) from None
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    return first, chunks


async def relay_stream(
    meta: RouteMeta,
    spec: ModelSpec,
    breaker: CircuitBreaker,
    first: Chunk,
    rest: AsyncIterator[Chunk],
    body: Mapping[str, Any],
    finish: Callable[[RouteMeta], None],
) -> AsyncIterator[Chunk]:
    """Yield the first chunk and the rest; when the stream ends (or breaks), fill ``meta`` and record it."""
    started = time.monotonic()
    parts: list[str] = []
    provider_usage: Mapping[str, Any] | None = None
    try:
        chunk: Chunk | None = first
        while chunk is not None:
            provider_usage = chunk.get("usage") or provider_usage
            for choice in chunk.get("choices") or []:
                parts.append(str((choice.get("delta") or {}).get("content") or ""))
                meta.finish_reason = choice.get("finish_reason") or meta.finish_reason
            yield chunk
            chunk = await anext(rest, None)
        meta.completed = True
    except UpstreamError as exc:
        # Bytes are already out: no fallback. The breaker learns of it; the client gets the error.
        breaker.record_failure()
        latency = meta.attempts[-1].latency_ms + (time.monotonic() - started) * 1000.0
        meta.attempts[-1] = Attempt(spec.id, STREAM_BROKEN, latency, exc.status, exc.message)
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
        meta.usage = Usage.from_provider(provider_usage, body, "".join(parts))
        meta.cost_usd = spec.cost_usd(
            meta.usage.input_tokens, meta.usage.output_tokens, meta.usage.cached_tokens
        )
        finish(meta)
