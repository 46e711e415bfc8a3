"""Hit, miss and audit counters, kept in memory on the request path and written in one transaction per
interval: a lookup (or the audit, on the event loop) never waits on a store write (a locked or full
database delays only the flush), and the store sees one write a second instead of one per lookup.

Counts still pending when a flush fails are dropped after being logged (they are statistics; holding
them while the disk is full would only grow memory). ``flush`` runs before anything reads them.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from semcache.cache.health import WriteHealth
from semcache.periodic import Periodic
from semcache.store.labels import AUDIT_COUNTERS
from semcache.store.records import Entry
from semcache.store.sqlite import Store

COLUMNS = ("hits_exact", "hits_semantic", "misses", "tokens_saved")


@dataclass
class _Pending:
    repos: dict[str, Counter[str]] = field(default_factory=dict)
    entries: dict[int, tuple[int, float]] = field(default_factory=dict)  # id -> (hits, last hit at)
    audits: dict[str, Counter[str]] = field(default_factory=dict)  # repo -> AUDIT_COUNTERS


class Counters:
    """Buffered hit, miss and audit counters over a store; thread-safe."""

    def __init__(self, store: Store, health: WriteHealth, interval_s: float = 1.0) -> None:
        self._store = store
        self._health = health
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending = _Pending()
        self._flusher = Periodic("semcache-counters", self.flush, interval_s)

    def hit(self, entry: Entry, kind: str, now: float) -> None:
        """Count a hit on ``entry`` ('exact' or 'semantic') and the tokens it saved."""
        with self._lock:
            repo = self._pending.repos.setdefault(entry.repo, Counter())
            repo["hits_exact" if kind == "exact" else "hits_semantic"] += 1
            repo["tokens_saved"] += entry.prompt_tokens + entry.completion_tokens
            hits, _ = self._pending.entries.get(entry.id, (0, now))
            self._pending.entries[entry.id] = (hits + 1, now)

    def miss(self, repo: str) -> None:
        """Count a lookup that found nothing."""
        with self._lock:
            self._pending.repos.setdefault(repo, Counter())["misses"] += 1

    def audit(self, repo: str, counter: str) -> None:
        """Count one audit event of a repo (see :data:`~semcache.store.labels.AUDIT_COUNTERS`)."""
        if counter not in AUDIT_COUNTERS:
            raise ValueError(f"unknown audit counter {counter!r}")
        with self._lock:
            self._pending.audits.setdefault(repo, Counter())[counter] += 1

    def forget(self, repo: str) -> None:
        """Drop a repo's pending counts (it is being purged)."""
        with self._lock:
            self._pending.repos.pop(repo, None)
            self._pending.audits.pop(repo, None)

    def start(self) -> None:
        """Flush every interval in a background thread."""
        self._flusher.start()

    def stop(self) -> None:
        """Stop the thread and write what is pending."""
        self._flusher.stop()

    def flush(self) -> None:
        """Write the pending counts in one transaction (a failure is recorded, never raised)."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, _Pending()
            if not pending.repos and not pending.entries and not pending.audits:
                return
            with self._health.guard("hit and miss counters"):
                self._write(pending)

    def _write(self, pending: _Pending) -> None:
        with self._store.write() as db:
            db.conn.executemany(
                "UPDATE entries SET hit_count = hit_count + ?, last_hit_at = ? WHERE id = ?",
                [(hits, at, entry_id) for entry_id, (hits, at) in pending.entries.items()],
            )
            for table, columns, per_repo in (
                ("repo_stats", COLUMNS, pending.repos),
                ("audit_stats", AUDIT_COUNTERS, pending.audits),
            ):
                marks = ", ".join("?" * (len(columns) + 1))
                sql = (
                    f"INSERT INTO {table} (repo, {', '.join(columns)}) VALUES ({marks}) ON CONFLICT (repo) "
                    f"DO UPDATE SET {', '.join(f'{c} = {table}.{c} + excluded.{c}' for c in columns)}"
                )
                db.conn.executemany(
                    sql, [(repo, *(counts.get(c, 0) for c in columns)) for repo, counts in per_repo.items()]
                )
