"""The typed results the router hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.classifier import Classification
from router.errors import RouterError
from router.execute import Attempt
from router.tokens import estimate_prompt_tokens, estimate_text_tokens


@dataclass(frozen=True)
class Usage:
    """Tokens of one call; ``input_tokens`` includes the system prompt and ``cached_tokens``."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_provider(cls, usage: Mapping[str, Any] | None, body: Mapping[str, Any], answer: str) -> Usage:
        """The provider's usage fields, or a local estimate when the provider sent none."""
        if not usage:
            prompt = estimate_prompt_tokens(body.get("messages") or [], body.get("tools"))
            return cls(prompt, estimate_text_tokens(answer), 0, estimated=True)
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )


@dataclass(frozen=True)
class RouteResult:
    """A routed, non-streaming completion and how it was obtained."""

    request_id: str
    completion: dict[str, Any]
    tier: str
    model: str
    classification: Classification
    attempts: tuple[Attempt, ...]
    usage: Usage
    cost_usd: float
    latency_ms: float

    @property
    def content(self) -> str:
        """The first choice's text (empty for tool calls)."""
        choices = self.completion.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")


@dataclass
class RouteMeta:
    """What a streaming route settled on before the first chunk.

    ``tier``, ``model`` and ``attempts`` are known when :meth:`Router.route_stream` returns;
    ``usage``, ``cost_usd`` and ``completed`` are filled in when the stream has been consumed.
    """

    request_id: str
    tier: str
    model: str
    classification: Classification
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    cost_usd: float | None = None
    completed: bool = False
    finish_reason: str | None = None


@dataclass(frozen=True)
class BatchItem:
    """One prompt of a batch: its result, or the error that stopped it (never both)."""

    index: int
    result: RouteResult | None = None
    error: RouterError | None = None

    @property
    def ok(self) -> bool:
        """Whether this item produced a completion."""
        return self.result is not None
