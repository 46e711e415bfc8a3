"""Per-repo FAISS indexes over normalized vectors (inner product = cosine); ids are store row ids.

The store is the truth and an index is derived: on load, and whenever another process has changed the
store, an index is reconciled against the store's ids (stale ids removed, missing ones added from the
stored vectors) and a missing or unreadable index file is rebuilt.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from semcache.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbor:
    """A vector found by a search: its store id and cosine similarity to the query."""

    id: int
    similarity: float


class RepoIndex:
    """One repo's exact inner-product index; every method is thread-safe."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.Lock()
        self.dirty = False

    @property
    def size(self) -> int:
        """Number of vectors held."""
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Sorted ids of the vectors held."""
        with self._lock:
            return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids."""
        if len(ids) == 0:
            return
        with self._lock:
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )
            self.dirty = True

    def remove(self, ids: list[int] | np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        if len(ids) == 0:
            return 0
        with self._lock:
            removed = self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            self.dirty = self.dirty or removed > 0
            return int(removed)

    def search(self, vector: np.ndarray, k: int, allowed: list[int] | None = None) -> list[Neighbor]:
        """The ``k`` nearest vectors, optionally only among ``allowed`` ids, best first."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        with self._lock:
            k = min(k, int(self._index.ntotal))
            if k <= 0:
                return []
            scores, ids = self._index.search(query, k, params=params)
        return [Neighbor(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        """Write the index atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
            self.dirty = False
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int) -> RepoIndex | None:
        """Read an index file; None if it is missing, unreadable or of another dimension."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("index file %s is unreadable (%s); it will be rebuilt", path, exc)
            return None
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            log.warning("index file %s does not match this build; it will be rebuilt", path)
            return None
        return cls(dim, index)


class IndexSet:
    """The indexes of all repos, loaded lazily and kept in step with the store."""

    def __init__(self, store: Store, index_dir: Path, dim: int) -> None:
        self._store = store
        self._dir = index_dir
        self._dim = dim
        self._indexes: dict[str, RepoIndex] = {}
        self._generations: dict[str, int] = {}
        # Held across a store write and the matching index change, so a reconcile never sees half.
        self.lock = threading.RLock()
        self._data_version = store.data_version()
        # A lookup searches with one query: FAISS's OpenMP threads then cost more than they save, and
        # on busy cores they spin against the embedding (measured on 2 cores, a 1,000-vector search:
        # 7-11 ms with 2 threads, 0.15 ms with 1). Concurrent requests keep the cores busy instead.
        faiss.omp_set_num_threads(1)

    def path(self, repo: str) -> Path:
        """The file a repo's index is saved to."""
        return self._dir / f"{repo}.faiss"

    def get(self, repo: str) -> RepoIndex:
        """The repo's index: loaded from its file or rebuilt, and reconciled with the store."""
        with self.lock:
            index = self._indexes.get(repo)
            if index is None:
                index = RepoIndex.load(self.path(repo), self._dim) or RepoIndex(self._dim)
                self._generations[repo] = self._store.generations().get(repo, 0)
                self._reconcile(repo, index)
                self._indexes[repo] = index
            return index

    def load_all(self) -> list[str]:
        """Load and check every repo's index (start-up); returns the repos loaded."""
        repos = list(self._store.repos())
        for repo in repos:
            self.get(repo)
        return repos

    def drop(self, repo: str) -> None:
        """Forget a repo's index in memory and on disk."""
        with self.lock:
            self._indexes.pop(repo, None)
            self._generations.pop(repo, None)
            self.path(repo).unlink(missing_ok=True)

    def save_dirty(self) -> int:
        """Persist every index changed since it was last saved; returns how many were written."""
        with self.lock:
            dirty = [(repo, index) for repo, index in self._indexes.items() if index.dirty]
        for repo, index in dirty:
            index.save(self.path(repo))
        return len(dirty)

    def sync_external(self) -> bool:
        """Reconcile loaded indexes with changes another process (e.g. the CLI) made to the store;
        returns whether there were any."""
        version = self._store.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        generations = self._store.generations()
        with self.lock:
            for repo, index in self._indexes.items():
                if generations.get(repo, 0) != self._generations.get(repo):
                    self._generations[repo] = generations.get(repo, 0)
                    self._reconcile(repo, index)
        return True

    def _reconcile(self, repo: str, index: RepoIndex) -> None:
        truth = self._store.ids(repo)
        held = index.ids()
        stale = np.setdiff1d(held, truth, assume_unique=True)
        missing = np.setdiff1d(truth, held, assume_unique=True)
        if len(stale):
            index.remove(stale)
        if len(missing):
            ids, vectors = self._store.vectors(repo)
            keep = np.isin(ids, missing)
            index.add(ids[keep], vectors[keep])
        if len(stale) or len(missing):
            log.info(
                "index of repo %s reconciled: %d stale removed, %d added", repo, len(stale), len(missing)
            )
