"""Vector search in PostgreSQL: the index set of a :class:`~semcache.store.postgres.PostgresStore`.

The vectors live in the store's ``entries`` table under pgvector's HNSW index, so there is nothing to
build, save, add to or remove from here: every replica searches the same rows. This gives the cache
core the same face as :class:`~semcache.index.sets.IndexSet` (``get(repo).search``, the lock, the
life-cycle calls, which do nothing here).
"""

from __future__ import annotations

import threading

import numpy as np

from semcache.index.ann import Neighbor
from semcache.store.postgres import PostgresStore


class PgRepoIndex:
    """One repo's rows of the shared HNSW index."""

    def __init__(self, store: PostgresStore, repo: str) -> None:
        self._store, self._repo = store, repo

    def search(self, vector: np.ndarray, k: int, allowed: list[int] | None = None) -> list[Neighbor]:
        """The ``k`` nearest entries of the repo (among ``allowed`` ids, when given), most similar first."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        where, params = "repo = %s", [self._repo]
        if allowed is not None:
            where, params = "repo = %s AND id = ANY(%s)", [self._repo, list(map(int, allowed))]
        sql = (
            f"SELECT id, embedding <=> %s AS distance FROM entries WHERE {where} "
            "ORDER BY embedding <=> %s LIMIT %s"
        )
        with self._store.db_handle.connection() as conn:
            rows = conn.execute(sql, [query, *params, query, k]).fetchall()
        found = [Neighbor(int(i), 1.0 - float(d)) for i, d in rows]
        return sorted(found, key=lambda n: -n.similarity)  # the iterative scan's order is relaxed

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Nothing to do: the store's insert wrote the vector."""

    def remove(self, ids: list[int] | np.ndarray) -> int:
        """Nothing to do: the store's delete removed the row."""
        return 0


class PgIndexSet:
    """Every repo's search over the store's HNSW index."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.lock = threading.RLock()
        self._version: int | None = None

    def get(self, repo: str) -> PgRepoIndex:
        """The repo's search."""
        return PgRepoIndex(self._store, repo)

    def load_all(self) -> list[str]:
        """The repos with entries (nothing to load); notes the store's version, so a change made after
        the start is noticed."""
        self._version = self._store.data_version()
        return list(self._store.repos())

    def empty(self, repo: str) -> None:
        """Nothing to do (a purge deletes the rows)."""

    def drop(self, repo: str) -> None:
        """Nothing to do (a purge deletes the rows)."""

    def save_dirty(self) -> int:
        """Nothing to save: the database keeps the index."""
        return 0

    def maintain(self) -> list[str]:
        """Nothing to rebuild: pgvector maintains its HNSW graph."""
        return []

    def sync_external(self) -> bool:
        """Whether another replica removed entries or changed thresholds since the last check (one small
        query; every lookup asks, so a change is in force at each replica's next lookup)."""
        version = self._store.data_version()
        changed = version != self._version
        self._version = version
        return changed
