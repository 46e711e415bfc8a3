"""The cache's records as typed values: an answer about to be stored, a stored entry, a repo's counters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GLOBAL = "*"  # the repo name under which thresholds for every repo are kept
INT64 = 2**63  # SQLite's integers are signed 64-bit: ids and counts must stay below this


@dataclass(frozen=True)
class NewEntry:
    """An answer about to be stored."""

    repo: str
    scope_key: str
    exact_key: str
    prompt: str
    response: dict[str, Any]
    model: str
    embedding: np.ndarray
    expires_at: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    context_files: list[tuple[str, str]] = field(default_factory=list)
    # The decision's stored form of the prompt's token states, and the decision model that made it.
    tokens: np.ndarray | None = None
    tokens_model: str | None = None


@dataclass(frozen=True)
class Entry:
    """A stored cache entry (without its vector)."""

    id: int
    repo: str
    scope_key: str
    exact_key: str
    prompt: str
    response: dict[str, Any]
    model: str
    prompt_tokens: int
    completion_tokens: int
    created_at: float
    expires_at: float
    hit_count: int
    last_hit_at: float | None


@dataclass(frozen=True)
class RepoStats:
    """Counters for one repo."""

    repo: str
    entries: int
    hits_exact: int
    hits_semantic: int
    misses: int
    tokens_saved: int

    @property
    def hits(self) -> int:
        """Exact plus semantic hits."""
        return self.hits_exact + self.hits_semantic

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups, or None before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


def entry_from_row(row: dict[str, Any]) -> Entry:
    """An entry from its row (the response column holds JSON)."""
    return Entry(**{**row, "response": json.loads(row["response"])})


def vectors_from_rows(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) from (id, float32 bytes) rows."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return ids, np.zeros((0, 0), dtype=np.float32)
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
