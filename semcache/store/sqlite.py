"""The source of truth: cache entries with their vectors, TTLs, stats and feedback, in SQLite.

One connection per ``Store``, guarded by a lock (callers run it from worker threads); WAL mode so a
CLI process can read and purge while the server runs. Row ids are AUTOINCREMENT and never reused, so
a stale vector in a FAISS index can never point at a different, newer entry.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from semcache.errors import StoreError
from semcache.store.migrations import migrate
from semcache.store.records import GLOBAL, Entry, NewEntry, RepoStats, entry_from_row, vectors_from_rows

__all__ = ["GLOBAL", "Store"]


_ENTRY_COLUMNS = (
    "id, repo, scope_key, exact_key, prompt, response, model, prompt_tokens, completion_tokens, "
    "created_at, expires_at, hit_count, last_hit_at"
)


class Store:
    """SQLite access for entries, stats and feedback; every method is thread-safe. The SQL is kept
    portable: :class:`~semcache.store.postgres.PostgresStore` runs it on PostgreSQL, overriding only
    what differs."""

    _NO_LIMIT = "LIMIT -1"  # SQLite needs a LIMIT before OFFSET

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        """Open (and migrate) the store at ``path``; past ``max_bytes`` writes fail as on a full disk."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._lock = threading.RLock()
            self._migrate()
            if max_bytes is not None:
                page = self.db.execute("PRAGMA page_size").fetchone()[0]
                self.db.execute(f"PRAGMA max_page_count = {max(int(max_bytes // page), 1)}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            try:
                with self.db.conn:
                    yield self.db
            except sqlite3.Error as exc:
                raise StoreError(f"store write failed: {exc}") from exc

    def write(self) -> contextlib.AbstractContextManager[sqlite_utils.Database]:
        """A write transaction on the store's connection (for the tables kept beside entries)."""
        return self._tx()

    def read(self, sql: str, params: tuple | list = (), plain: bool = False) -> list[Any]:
        """Rows of a query on the store's connection, as dicts (or tuples when ``plain``)."""
        return self._read(sql, params, plain)

    def _read(self, sql: str, params: tuple | list = (), plain: bool = False) -> list[Any]:
        """Rows as dicts, or as plain tuples for bulk reads where a dict per row would dominate."""
        with self._lock:
            try:
                return self.db.execute(sql, params).fetchall() if plain else list(self.db.query(sql, params))
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from exc

    def _migrate(self) -> None:
        with self._lock:
            migrate(self.db)

    # -- entries -------------------------------------------------------------------------------

    def insert(
        self, entry: NewEntry, now: float | None = None, epoch: int | None = None
    ) -> tuple[int | None, list[int]]:
        """Store an entry; returns (new id, ids it replaced because they had the same exact key). With
        ``epoch``, the purge epoch its request was looked up at: if the repo was purged since, nothing
        is stored and the id is None (a purge is final)."""
        now = time.time() if now is None else now
        row = {
            "repo": entry.repo,
            "scope_key": entry.scope_key,
            "exact_key": entry.exact_key,
            "prompt": entry.prompt,
            "response": json.dumps(entry.response),
            "model": entry.model,
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "embedding": self._vector_value(entry.embedding),
            "created_at": now,
            "expires_at": entry.expires_at,
            "tokens": None if entry.tokens is None else np.ascontiguousarray(entry.tokens).tobytes(),
            "tokens_model": entry.tokens_model,
        }
        with self._tx() as db:
            if epoch is not None:
                purged = db.execute("SELECT purges FROM repo_stats WHERE repo = ?", [entry.repo]).fetchone()
                if (purged[0] if purged else 0) != epoch:
                    return None, []
            replaced = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM entries WHERE exact_key = ?", [entry.exact_key]
                ).fetchall()
            ]
            if replaced:
                db.execute("DELETE FROM entries WHERE exact_key = ?", [entry.exact_key])
            new_id = db["entries"].insert(row).last_pk
            db["context_files"].insert_all(
                {"entry_id": new_id, "repo": entry.repo, "path": p, "sha": s} for p, s in entry.context_files
            )
        return int(new_id), replaced

    def get_exact(self, exact_key: str, now: float) -> Entry | None:
        """The live entry with this exact key, if any."""
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE exact_key = ? AND expires_at > ?", [exact_key, now]
        )
        return entry_from_row(rows[0]) if rows else None

    def get_many(self, ids: list[int]) -> dict[int, Entry]:
        """Entries by id (missing ids are left out)."""
        return self._entries_by_id(ids)

    def candidates(
        self, ids: list[int], scope_key: str, now: float, model: str
    ) -> dict[int, tuple[Entry, np.ndarray | None]]:
        """The live entries of one scope among ``ids``, each with its stored token states (flat int8)
        where ``model`` made them: a lookup's whole read of its candidates, in one query."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        sql = (
            f"SELECT {_ENTRY_COLUMNS}, CASE WHEN tokens_model = ? THEN tokens END AS states FROM entries "
            f"WHERE id IN ({marks}) AND scope_key = ? AND expires_at > ?"
        )
        out = {}
        for row in self._read(sql, [model, *ids, scope_key, now]):
            states = row.pop("states")
            out[row["id"]] = (
                entry_from_row(row),
                None if states is None else np.frombuffer(states, dtype=np.int8),
            )
        return out

    def tokens(self, ids: list[int], model: str) -> dict[int, np.ndarray]:
        """The stored token states (flat int8) of those ``ids`` whose states ``model`` made."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        sql = f"SELECT id, tokens FROM entries WHERE id IN ({marks}) AND tokens_model = ?"
        rows = self._read(sql, [*ids, model], plain=True)
        return {row[0]: np.frombuffer(row[1], dtype=np.int8) for row in rows if row[1] is not None}

    def set_tokens(self, tokens: dict[int, np.ndarray], model: str) -> None:
        """Replace entries' stored token states (made again for a new decision model)."""
        with self._tx() as db:
            db.conn.executemany(
                "UPDATE entries SET tokens = ?, tokens_model = ? WHERE id = ?",
                [(np.ascontiguousarray(t).tobytes(), model, i) for i, t in tokens.items()],
            )

    def _entries_by_id(self, ids: list[int]) -> dict[int, Entry]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        sql = f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id IN ({marks})"
        return {row["id"]: entry_from_row(row) for row in self._read(sql, ids)}

    def get(self, repo: str, entry_id: int) -> Entry | None:
        """One entry of ``repo`` by id."""
        entry = self.get_many([entry_id]).get(entry_id)
        return entry if entry is not None and entry.repo == repo else None

    def scope_ids(self, repo: str, scope_key: str, now: float) -> list[int]:
        """Ids of the live entries in one scope."""
        rows = self._read(
            "SELECT id FROM entries WHERE repo = ? AND scope_key = ? AND expires_at > ?",
            [repo, scope_key, now],
        )
        return [r["id"] for r in rows]

    def count(self, repo: str) -> int:
        """Number of entries of a repo."""
        return int(self._read("SELECT COUNT(*) AS n FROM entries WHERE repo = ?", [repo])[0]["n"])

    def vector_batches(self, repo: str, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (ids, vectors) of a repo in id order, ``batch`` rows at a time (for rebuilding its index
        without holding every vector twice, or the lock for the whole read)."""
        last = 0
        sql = "SELECT id, embedding FROM entries WHERE repo = ? AND id > ? ORDER BY id LIMIT ?"
        while rows := self._read(sql, [repo, last, batch], plain=True):
            yield self._rows_to_vectors(rows)
            last = rows[-1][0]

    def vectors_of(self, repo: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the given entries of a repo (missing ids are left out)."""
        rows: list[tuple] = []
        for start in range(0, len(ids), 10_000):
            chunk = [int(i) for i in ids[start : start + 10_000]]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, embedding FROM entries WHERE repo = ? AND id IN ({marks})"
            rows += self._read(sql, [repo, *chunk], plain=True)
        return self._rows_to_vectors(rows)

    def ids(self, repo: str) -> np.ndarray:
        """Sorted ids of all entries of a repo."""
        rows = self._read("SELECT id FROM entries WHERE repo = ? ORDER BY id", [repo], plain=True)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- removal -------------------------------------------------------------------------------

    def delete(self, repo: str, entry_id: int) -> bool:
        """Delete one entry; False if it does not exist in ``repo``."""
        return bool(self._delete_where("repo = ? AND id = ?", [repo, entry_id], repo))

    def delete_some(self, repo: str, limit: int) -> int:
        """Delete up to ``limit`` entries of a repo in one short transaction, without bumping its
        generation (a purge bumps it once at the end, so other processes reconcile once); returns how
        many were deleted."""
        with self._tx() as db:
            sql = "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE repo = ? LIMIT ?)"
            return int(db.execute(sql, [repo, limit]).rowcount)

    def mark_purge(self, repo: str, now: float) -> None:
        """Record that a repo is being purged, so a restart finishes the purge."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO purges (repo, requested_at) VALUES (?, ?) ON CONFLICT DO NOTHING", [repo, now]
            )

    def pending_purges(self) -> list[str]:
        """Repos whose purge began and has not finished."""
        return [r["repo"] for r in self._read("SELECT repo FROM purges ORDER BY requested_at")]

    def purge_repo(self, repo: str) -> int:
        """Delete every entry of a repo and its stats; returns the number of entries removed."""
        with self._tx() as db:
            count = db.execute("SELECT COUNT(*) FROM entries WHERE repo = ?", [repo]).fetchone()[0]
            db.execute("DELETE FROM entries WHERE repo = ?", [repo])
            db.execute("DELETE FROM feedback WHERE repo = ?", [repo])
            db.execute("DELETE FROM thresholds WHERE repo = ?", [repo])
            db.execute("DELETE FROM labels WHERE repo = ?", [repo])
            db.execute("DELETE FROM audit_stats WHERE repo = ?", [repo])
            db.execute("DELETE FROM purges WHERE repo = ?", [repo])
            row = db.execute("SELECT generation, purges FROM repo_stats WHERE repo = ?", [repo]).fetchone()
            db.execute("DELETE FROM repo_stats WHERE repo = ?", [repo])
            if row is not None or count:  # a repo never seen leaves no row behind
                # The generation moves on so a server notices the purge; the purge count so an answer
                # looked up before it is never stored after it.
                generation, purges = row or (0, 0)
                db.execute(
                    "INSERT INTO repo_stats (repo, generation, purges) VALUES (?, ?, ?)",
                    [repo, generation + 1, purges + 1],
                )
        return int(count)

    def purge_epoch(self, repo: str) -> int:
        """How many purges of ``repo`` have finished (an answer looked up at one epoch is stored only
        while it still holds)."""
        rows = self._read("SELECT purges FROM repo_stats WHERE repo = ?", [repo], plain=True)
        return int(rows[0][0]) if rows else 0

    def purge_context_file(self, repo: str, path: str) -> list[int]:
        """Delete the entries of a repo that depended on a context file path; returns their ids."""
        return self._delete_where(
            "repo = ? AND id IN (SELECT entry_id FROM context_files WHERE repo = ? AND path = ?)",
            [repo, repo, path],
            repo,
        )

    def expire(self, now: float) -> dict[str, list[int]]:
        """Delete every expired entry; returns the removed ids per repo."""
        rows = self._read("SELECT id, repo FROM entries WHERE expires_at <= ?", [now])
        removed: dict[str, list[int]] = {}
        for row in rows:
            removed.setdefault(row["repo"], []).append(row["id"])
        for repo, ids in removed.items():
            marks = ",".join("?" * len(ids))
            self._delete_where(f"repo = ? AND id IN ({marks})", [repo, *ids], repo)
        return removed

    def evict_over(self, repo: str, max_entries: int) -> list[int]:
        """Delete the least recently hit entries of a repo beyond ``max_entries``; returns their ids."""
        return self._delete_where(
            "id IN (SELECT id FROM entries WHERE repo = ? "
            f"ORDER BY COALESCE(last_hit_at, created_at) DESC, id DESC {self._NO_LIMIT} OFFSET ?)",
            [repo, max_entries],
            repo,
        )

    def _delete_where(self, where: str, params: list, repo: str) -> list[int]:
        with self._tx() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM entries WHERE {where}", params).fetchall()]
            if ids:
                db.execute(f"DELETE FROM entries WHERE {where}", params)
                self._bump(db, repo)
        return ids

    # -- stats, generations, feedback ----------------------------------------------------------

    def stats(self, repo: str, entries: int | None = None) -> RepoStats:
        """Counters and entry count for one repo (zeros for an unknown repo); ``entries``, when the
        caller knows it, spares counting the repo's rows."""
        rows = self._read("SELECT * FROM repo_stats WHERE repo = ?", [repo])
        row = rows[0] if rows else {}
        return RepoStats(
            repo=repo,
            entries=self.count(repo) if entries is None else entries,
            hits_exact=row.get("hits_exact", 0),
            hits_semantic=row.get("hits_semantic", 0),
            misses=row.get("misses", 0),
            tokens_saved=row.get("tokens_saved", 0),
        )

    def repos(self) -> dict[str, int]:
        """Every repo that has entries or counters, with its entry count."""
        rows = self._read(
            "SELECT repo, SUM(n) AS n FROM (SELECT repo, COUNT(*) AS n FROM entries GROUP BY repo "
            "UNION ALL SELECT repo, 0 FROM repo_stats WHERE hits_exact + hits_semantic + misses > 0) "
            "GROUP BY repo ORDER BY repo"
        )
        return {r["repo"]: int(r["n"]) for r in rows}

    def generations(self) -> dict[str, int]:
        """Each repo's generation: it moves whenever entries are removed."""
        return {r["repo"]: r["generation"] for r in self._read("SELECT repo, generation FROM repo_stats")}

    def data_version(self) -> int:
        """SQLite's data_version: changes when another connection commits."""
        return self._read("PRAGMA data_version")[0]["data_version"]

    def add_feedback(self, entry: Entry, query_prompt: str, similarity: float | None, label: int) -> int:
        """Keep a labelled (query, cached prompt) pair for later training; returns its id."""
        row = {
            "repo": entry.repo,
            "scope_key": entry.scope_key,
            "query_prompt": query_prompt,
            "cached_prompt": entry.prompt,
            "entry_id": entry.id,
            "similarity": similarity,
            "label": label,
            "created_at": time.time(),
        }
        with self._tx() as db:
            return int(db["feedback"].insert(row).last_pk)

    def feedback(self, repo: str) -> list[dict[str, Any]]:
        """The labelled pairs kept for a repo."""
        return self._read("SELECT * FROM feedback WHERE repo = ? ORDER BY id", [repo])

    def save_threshold(self, repo: str, verifier: str, budget: float, threshold: float, pairs: int) -> None:
        """Store a tuned threshold for a repo (or :data:`GLOBAL`), verifier and false-hit budget."""
        row = {
            "repo": repo,
            "verifier": verifier,
            "budget": budget,
            "threshold": threshold,
            "pairs": pairs,
            "fitted_at": time.time(),
        }
        with self._tx() as db:
            db["thresholds"].insert(row, replace=True)

    def threshold_models(self) -> list[str]:
        """Every verifier model that has tuned thresholds stored."""
        return [row["verifier"] for row in self._read("SELECT DISTINCT verifier FROM thresholds", [])]

    def thresholds(self, verifier: str) -> dict[str, dict[float, float]]:
        """Tuned thresholds of a verifier: repo (or :data:`GLOBAL`) → budget → threshold."""
        rows = self._read("SELECT repo, budget, threshold FROM thresholds WHERE verifier = ?", [verifier])
        out: dict[str, dict[float, float]] = {}
        for row in rows:
            out.setdefault(row["repo"], {})[row["budget"]] = row["threshold"]
        return out

    @staticmethod
    def _count(db: sqlite_utils.Database, repo: str, column: str, amount: int) -> None:
        db.execute(
            f"INSERT INTO repo_stats (repo, {column}) VALUES (?, ?) "
            f"ON CONFLICT (repo) DO UPDATE SET {column} = repo_stats.{column} + excluded.{column}",
            [repo, amount],
        )

    def _bump(self, db: sqlite_utils.Database, repo: str) -> None:
        self._count(db, repo, "generation", 1)

    @staticmethod
    def _rows_to_vectors(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) from (id, stored vector) rows."""
        return vectors_from_rows(rows)

    @staticmethod
    def _vector_value(vector: np.ndarray) -> Any:
        """A vector as its column stores it (float32 bytes)."""
        return np.asarray(vector, dtype=np.float32).tobytes()
