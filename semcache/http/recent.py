"""What the dashboard shows that the store does not keep: each repo's latest hits and its lookups per
minute, in memory only (a restart starts them empty; several sidecars each keep their own).

Bounded on every side: :data:`HITS_PER_REPO` hits and :data:`MINUTES_KEPT` minute buckets per repo,
:data:`REPOS_KEPT` repos (the one quiet longest is dropped first), prompts cut to :data:`PROMPT_CHARS`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from semcache.cache.lookups import CacheHit

__all__ = ["OUTCOMES", "MinuteCounts", "RecentActivity", "RecentHit"]

HITS_PER_REPO = 50
MINUTES_KEPT = 180
REPOS_KEPT = 500
PROMPT_CHARS = 300
OUTCOMES = ("hit-exact", "hit-semantic", "miss", "bypass")
_SLOT = {outcome: slot for slot, outcome in enumerate(OUTCOMES)}


@dataclass(frozen=True)
class RecentHit:
    """One served hit: when, how, how close, and the two prompts (the request's and the entry's)."""

    at: float
    kind: str
    similarity: float
    score: float
    entry_id: int
    prompt: str
    matched_prompt: str
    reported: bool = False  # reported as wrong since (its entry is evicted)


@dataclass(frozen=True)
class MinuteCounts:
    """Lookups of one repo in one minute, by outcome (``OUTCOMES``)."""

    start: float
    counts: dict[str, int]

    @property
    def hits(self) -> int:
        """Exact plus semantic hits."""
        return self.counts.get("hit-exact", 0) + self.counts.get("hit-semantic", 0)

    @property
    def lookups(self) -> int:
        """Hits plus misses (bypassed requests were never looked up)."""
        return self.hits + self.counts.get("miss", 0)

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups, or None in a minute without lookups."""
        return self.hits / self.lookups if self.lookups else None


@dataclass
class _Repo:
    hits: deque[RecentHit] = field(default_factory=lambda: deque(maxlen=HITS_PER_REPO))
    minutes: OrderedDict[int, list[int]] = field(default_factory=OrderedDict)  # minute -> counts


class RecentActivity:
    """Recent hits and per-minute lookup counts of every repo, fed by the chat gateway."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._repos: OrderedDict[str, _Repo] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, repo: str, outcome: str, prompt: str, hit: CacheHit | None = None) -> None:
        """Count one lookup of ``repo``, and keep the hit it served if any."""
        now = self._clock()
        minute = int(now // 60)
        with self._lock:
            activity = self._repos.pop(repo, None) or _Repo()
            self._repos[repo] = activity  # the most recently active repo goes last
            while len(self._repos) > REPOS_KEPT:
                self._repos.popitem(last=False)
            activity.minutes.setdefault(minute, [0] * len(OUTCOMES))[_SLOT[outcome]] += 1
            while len(activity.minutes) > MINUTES_KEPT:
                activity.minutes.popitem(last=False)
            if hit is not None:
                activity.hits.append(
                    RecentHit(
                        now,
                        hit.kind,
                        hit.similarity,
                        hit.score,
                        hit.entry.id,
                        prompt[:PROMPT_CHARS],
                        hit.entry.prompt[:PROMPT_CHARS],
                    )
                )

    def hits(self, repo: str) -> list[RecentHit]:
        """The repo's latest hits, newest first."""
        with self._lock:
            activity = self._repos.get(repo)
            return list(reversed(activity.hits)) if activity else []

    def timeline(self, repo: str, minutes: int = 60) -> list[MinuteCounts]:
        """The repo's lookups in each of the last ``minutes`` minutes, oldest first (zeros where none)."""
        last = int(self._clock() // 60)
        with self._lock:
            activity = self._repos.get(repo)
            kept = dict(activity.minutes) if activity else {}
        zeros = [0] * len(OUTCOMES)
        return [
            MinuteCounts(minute * 60.0, dict(zip(OUTCOMES, kept.get(minute, zeros), strict=True)))
            for minute in range(last - minutes + 1, last + 1)
        ]

    def forget_hits(self, repo: str) -> None:
        """Drop the repo's recent hits (its entries were purged); its counts stay."""
        with self._lock:
            activity = self._repos.get(repo)
            if activity is not None:
                activity.hits.clear()

    def mark_reported(self, repo: str, entry_id: int) -> None:
        """Mark the repo's recent hits on ``entry_id`` as reported wrong."""
        with self._lock:
            activity = self._repos.get(repo)
            if activity is None:
                return
            marked = [replace(h, reported=True) if h.entry_id == entry_id else h for h in activity.hits]
            activity.hits.clear()
            activity.hits.extend(marked)

    def repos(self) -> list[str]:
        """The repos with recorded activity, most recently active first."""
        with self._lock:
            return list(reversed(self._repos))
