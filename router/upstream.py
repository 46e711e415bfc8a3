"""The one place the ``openai`` client is called, and where its errors are classified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

from router.errors import UpstreamError

# Request fields passed to the provider as typed arguments; everything else travels in extra_body.
_DIRECT_FIELDS = ("model", "messages", "stream")
# Upstream statuses that speak of the server's configuration (its key, its base URL or model names).
_NOT_THE_CLIENTS = {
    401: "the server's upstream key was refused",
    403: "the server's upstream key may not do this",
    404: "unknown model or wrong upstream base URL",
}


def classify_error(exc: Exception) -> UpstreamError:
    """Translate an openai/httpx exception into an :class:`UpstreamError`.

    Timeouts, connection errors, 429 and 5xx are retryable; other 4xx are not.
    """
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return UpstreamError(
            f"upstream timed out: {exc}", status=504, retryable=True, kind="upstream_timeout"
        )
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return UpstreamError(
            f"upstream unreachable: {exc}", status=502, retryable=True, kind="upstream_unavailable"
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code in _NOT_THE_CLIENTS:
        # About the server's own key or base URL, not the client's request: a gateway error.
        return UpstreamError(
            f"upstream answered {exc.status_code} ({_NOT_THE_CLIENTS[exc.status_code]}): {_error_message(exc)}",
            status=502,
            retryable=False,
            kind="upstream_auth_error" if exc.status_code in (401, 403) else "upstream_not_found",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status == 429 or status >= 500
        return UpstreamError(
            f"upstream answered {status}: {_error_message(exc)}",
            status=status if status < 500 else 502,
            retryable=retryable,
            retry_after_s=_retry_after(exc.response),
            kind="upstream_rate_limited" if status == 429 else "upstream_error",
        )
    return UpstreamError(f"upstream call failed: {exc!r}", status=502, retryable=False)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAIUpstream:
    """An OpenAI-compatible chat endpoint, called through the async ``openai`` client.

    ``max_retries=0``: retrying and fallback belong to the router, not to the client.
    """

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 60.0) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unset", timeout=timeout_s, max_retries=0
        )

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a non-streaming chat completion and return the provider's JSON."""
        direct, extra = _split_body(body)
        try:
            completion = await self._client.chat.completions.create(**direct, extra_body=extra)
        except Exception as exc:
            raise classify_error(exc) from exc
        return completion.model_dump(mode="json", exclude_unset=True)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Start a streaming chat completion; errors before the first chunk raise here."""
        direct, extra = _split_body({**body, "stream": True})
        extra.setdefault("stream_options", {"include_usage": True})
        try:
            stream = await self._client.chat.completions.create(**direct, extra_body=extra)
        except Exception as exc:
            raise classify_error(exc) from exc
        return _chunks(stream)

    async def aclose(self) -> None:
        """Close the underlying HTTP connection pool."""
        await self._client.close()


async def _chunks(stream: openai.AsyncStream) -> AsyncIterator[dict[str, Any]]:
    try:
        async for chunk in stream:
            yield chunk.model_dump(mode="json", exclude_unset=True)
    except Exception as exc:
        raise classify_error(exc) from exc
    finally:
        await stream.close()


def _split_body(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    direct = {k: body[k] for k in _DIRECT_FIELDS if k in body}
    extra = {k: v for k, v in body.items() if k not in _DIRECT_FIELDS}
    return direct, extra
