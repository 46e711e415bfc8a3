"""Labels from live traffic, kept beside the entries: (score, similarity, right?) of one lookup's best
candidate, judged by comparing answers, with the weight that makes the labels a fair sample of lookups.

A near miss is labelled every time (weight 1); a hit is audited at a rate r (weight 1/r); a wrong-hit
report is a label too. Labels expire with the entries they came from (they take the entry's expiry,
and stay when the entry is evicted or deleted first: eviction keeps the entries that were hit and
deletions pick wrong ones, so going with them would bias the sample) and go with their repo's purge.
The audit's own counters (audits made, judges undecided, jobs dropped on overflow) are kept per repo in
the same store; ``semcache.cache.counters`` writes them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from semcache.store.sqlite import Store

SOURCES = ("near_miss", "audit", "feedback")
REPORT = "report"  # the judge of a wrong-hit report: the person who made it
AUDIT_COUNTERS = ("audits", "judge_failures", "overflow")


@dataclass(frozen=True)
class Label:
    """One judged lookup: would serving ``entry_id`` (score, similarity) have been right?"""

    repo: str
    entry_id: int
    model: str  # the decision model whose score this is
    score: float
    similarity: float
    label: int  # 1: the cached answer serves the request; 0: it does not
    weight: float  # the inverse of the chance that this lookup was labelled
    source: str  # one of SOURCES
    expires_at: float
    judge: str = ""  # the judge that made it (REPORT for a wrong-hit report; "" before judges were kept)


@dataclass(frozen=True)
class LabelArrays:
    """A repo's live labels as arrays, oldest first."""

    score: np.ndarray
    similarity: np.ndarray
    label: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


class LabelStore:
    """Reads and writes labels and audit counters in the cache's store; thread-safe like the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, label: Label, now: float | None = None) -> None:
        """Keep one label."""
        if label.source not in SOURCES:
            raise ValueError(f"unknown label source {label.source!r}")
        row = {**asdict(label), "created_at": time.time() if now is None else now}
        with self._store.write() as db:
            db["labels"].insert(row)

    def arrays(
        self, repo: str, model: str, now: float, limit: int, judges: tuple[str, ...] | None = None
    ) -> LabelArrays:
        """The ``limit`` most recent live labels of a repo for one decision model (only those made by
        ``judges``, a non-empty tuple, when given)."""
        only = f" AND judge IN ({', '.join('?' * len(judges))})" if judges is not None else ""
        sql = (
            "SELECT score, similarity, label, weight FROM labels WHERE repo = ? AND model = ? "
            f"AND expires_at > ?{only} ORDER BY id DESC LIMIT ?"
        )
        params = [repo, model, now, *(judges or ()), limit]
        rows = self._store.read(sql, params, plain=True)[::-1]
        table = np.array(rows, dtype=np.float64).reshape(-1, 4)
        return LabelArrays(table[:, 0], table[:, 1], table[:, 2].astype(int), table[:, 3])

    def counts(self, repo: str, model: str, now: float) -> dict[str, int]:
        """Live labels of a repo per source."""
        sql = (
            "SELECT source, COUNT(*) FROM labels WHERE repo = ? AND model = ? AND expires_at > ? "
            "GROUP BY source"
        )
        found = dict(self._store.read(sql, [repo, model, now], plain=True))
        return {source: int(found.get(source, 0)) for source in SOURCES}

    def repos(self, model: str) -> list[str]:
        """Repos holding labels for a decision model."""
        rows = self._store.read("SELECT DISTINCT repo FROM labels WHERE model = ?", [model], plain=True)
        return [r[0] for r in rows]

    def expire(self, now: float) -> list[str]:
        """Drop labels whose entries' lifetime is over; returns the repos that lost some."""
        with self._store.write() as db:
            rows = db.execute("SELECT DISTINCT repo FROM labels WHERE expires_at <= ?", [now]).fetchall()
            db.execute("DELETE FROM labels WHERE expires_at <= ?", [now])
        return [row[0] for row in rows]

    def counters(self, repo: str) -> dict[str, int]:
        """A repo's audit counters (zeros when it has none)."""
        rows = self._store.read("SELECT * FROM audit_stats WHERE repo = ?", [repo])
        row = rows[0] if rows else {}
        return {name: int(row.get(name, 0)) for name in AUDIT_COUNTERS}
