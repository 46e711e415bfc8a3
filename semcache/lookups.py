"""What a lookup finds: a hit, the near miss the audit may label, and which answers may be stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from semcache.records import Entry


@dataclass(frozen=True)
class CacheHit:
    """A cached answer judged right for the request."""

    entry: Entry
    kind: Literal["exact", "semantic"]
    similarity: float
    score: float


@dataclass(frozen=True)
class NearMiss:
    """The candidate a lookup judged best by the decision (served or not), for the audit to label."""

    entry_id: int
    score: float
    similarity: float


@dataclass(frozen=True)
class Lookup:
    """The outcome of a lookup; ``embedding`` and ``tokens`` (the decision's stored form of the prompt's
    token states) are kept so a miss can be stored without embedding it again."""

    hit: CacheHit | None
    embedding: np.ndarray | None = None
    tokens: np.ndarray | None = None
    # True when no threshold holds the request's false-hit budget (none calibrated that strict, or the
    # repo's labels say none does): no semantic hit
    # could be served, and the response says so.
    uncalibrated: bool = False
    # The best candidate that passed the cosine floor: the hit itself, or the near miss a judge may label.
    near: NearMiss | None = None


def is_cacheable(completion: dict[str, Any]) -> bool:
    """Only complete, non-empty, non-tool-call answers are stored."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        message = choice.get("message") or {}
        content = message.get("content")
        if choice.get("finish_reason") != "stop" or message.get("tool_calls") or message.get("function_call"):
            return False
        if not isinstance(content, str) or not content.strip():
            return False
    return True
