"""What a lookup finds: a hit, the near miss the audit may label, and which answers may be stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from semcache.store.records import INT64, Entry


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
    # repo's labels say none does): no semantic hit could be served, and the response says so.
    uncalibrated: bool = False
    # The best candidate that passed the cosine floor: the hit itself, or the near miss a judge may label.
    near: NearMiss | None = None
    # The repo's purge epoch when the lookup began: the answer of a miss is stored only if it holds.
    epoch: int | None = None
    # The store could not be read (a database outage): a miss, answered upstream and not cached.
    store_down: bool = False


def is_cacheable(completion: Any) -> bool:
    """Only complete, non-empty, non-tool-call answers are stored; anything malformed is not."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return False
        content = message.get("content")
        if choice.get("finish_reason") != "stop" or message.get("tool_calls") or message.get("function_call"):
            return False
        if not isinstance(content, str) or not content.strip():
            return False
    return _strict_json(completion)


def _strict_json(value: Any) -> bool:
    """Whether ``value`` is JSON a client can read back: an upstream answer holding NaN or Infinity
    (Python's json reads them) would make every later hit on it fail to serialise."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def token_count(usage: Any, field: str) -> int:
    """A usage count as the store keeps it: a whole number in 0 .. 2^63 - 1, else 0 (a provider's
    malformed usage is not worth refusing its answer for)."""
    value = usage.get(field) if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < INT64:
        return 0
    return value


def usage_problem(usage: Any) -> str | None:
    """What is wrong with an operator-sent ``usage`` object, or None when it is absent or well formed."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage must be an object"
    for field, value in usage.items():
        if field.endswith("_tokens") and token_count(usage, field) != value:
            return f"usage.{field} must be a whole number from 0 to 2^63 - 1"
    return None
