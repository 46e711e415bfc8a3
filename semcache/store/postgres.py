"""The store on PostgreSQL with pgvector, shared by every replica that points at it.

It is :class:`~semcache.store.sqlite.Store` with another connection: the same (portable) SQL runs
through :class:`~semcache.store.pg_database.PgDatabase`; only what differs is overridden here. Vectors
are pgvector ``vector`` columns under an HNSW index (``semcache.index.pgvector`` searches them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from semcache.store.pg_database import PgDatabase, PgTx
from semcache.store.sqlite import Store


class PostgresStore(Store):
    """Entries, vectors, stats, thresholds, labels and keys in one PostgreSQL database."""

    _NO_LIMIT = "LIMIT ALL"

    def __init__(
        self,
        url: str,
        dim: int,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 128,
        pool_size: int = 8,
    ) -> None:
        """Connect to the database at ``url`` and bring its schema up to date (``dim``: the vectors'
        size, fixed when the schema is made). Searches run pgvector's iterative HNSW scan, so a search
        filtered to one repo or scope keeps scanning until it has its k rows."""
        session = {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "relaxed_order"}
        self.db_handle = PgDatabase(url, dim, pool_size=pool_size, session=session)
        try:
            self.db_handle.migrate(hnsw_m, hnsw_ef_construction)
        except Exception:
            self.db_handle.close()
            raise

    def close(self) -> None:
        """Close the pool."""
        self.db_handle.close()

    @contextmanager
    def _tx(self) -> Iterator[PgTx]:  # type: ignore[override]
        with self.db_handle.transaction() as tx:
            yield tx

    def write(self) -> contextlib.AbstractContextManager[PgTx]:  # type: ignore[override]
        """A write transaction (for the tables kept beside entries)."""
        return self._tx()

    def _read(self, sql: str, params: tuple | list = (), plain: bool = False) -> list[Any]:
        return self.db_handle.read(sql, params, plain)

    def delete_some(self, repo: str, limit: int) -> int:
        """Delete all of a repo's entries in one transaction (``limit`` is for SQLite's single writer;
        here other replicas see the repo whole until the commit, then empty)."""
        with self._tx() as db:
            return int(db.execute("DELETE FROM entries WHERE repo = ?", [repo]).rowcount)

    def data_version(self) -> int:
        """Changes whenever entries are removed or thresholds change, by any replica."""
        rows = self._read(
            "SELECT COALESCE((SELECT SUM(generation) FROM repo_stats), 0) + "
            "COALESCE((SELECT SUM(fitted_at) FROM thresholds), 0)",
            plain=True,
        )
        return hash(float(rows[0][0]))

    @staticmethod
    def _vector_value(vector: np.ndarray) -> Any:
        return np.asarray(vector, dtype=np.float32)

    @staticmethod
    def _rows_to_vectors(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.stack([np.asarray(_array(r[1]), dtype=np.float32) for r in rows])


def _array(value: Any) -> Any:
    """pgvector's value as something numpy takes (its ``Vector``, or an array already)."""
    return value.to_numpy() if hasattr(value, "to_numpy") else value
