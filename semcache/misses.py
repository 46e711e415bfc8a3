"""The miss path: adapters that give the gateway's :class:`~semcache.gateway.Upstream` shape to the
router package's pieces. Part of the composition layer, like ``server.py`` and ``cli.py``."""

from __future__ import annotations

from typing import Any

from router.upstream import OpenAIUpstream
from semcache.gateway import Answer, StreamAnswer


class DirectUpstream:
    """Every miss goes to one configured OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self._client = OpenAIUpstream(base_url, api_key, timeout_s)

    async def complete(self, body: dict[str, Any], repo: str) -> Answer:
        """Forward a chat request."""
        return Answer(await self._client.complete(body))

    async def stream(self, body: dict[str, Any], repo: str) -> StreamAnswer:
        """Forward a streaming chat request."""
        return StreamAnswer(await self._client.stream(body))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
