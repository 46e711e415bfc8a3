"""Per-repo vector indexes over normalized vectors (inner product = cosine); ids are store row ids.

The store is the truth and an index is derived: on load, and whenever another process has changed the
store, an index is reconciled against the store's ids (stale ids removed, missing ones added from the
stored vectors) and a missing or unreadable index file is rebuilt. A repo's index is exact (flat) up
to ``AnnParams.min_entries`` and approximate past it (IVF lists by default, or an HNSW graph);
:meth:`IndexSet.maintain` switches structures, refits IVF lists once a repo has doubled or halved, and
compacts graphs with many tombstones, building the new structure from the store off the lock.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from semcache.index import ann, ivf
from semcache.index import files as structures
from semcache.index.ann import AnnParams, Neighbor, VectorIndex
from semcache.store.sqlite import Store

__all__ = ["AnnParams", "IndexSet", "Neighbor", "RepoIndex"]

log = logging.getLogger(__name__)


class RepoIndex:
    """One repo's index; every method is thread-safe. The structure behind it can be swapped."""

    def __init__(self, structure: VectorIndex) -> None:
        self._structure = structure
        self._lock = threading.Lock()
        self.dirty = False

    @property
    def kind(self) -> str:
        """'flat' (exact), 'ivf' or 'hnsw' (approximate)."""
        return self._structure.kind

    @property
    def sized_for(self) -> int:
        """The repo size the structure was shaped for (IVF's lists); 0 where size does not matter."""
        return self._structure.sized_for

    @property
    def size(self) -> int:
        """Number of live vectors held."""
        return self._structure.size

    @property
    def tombstones(self) -> int:
        """Removed vectors still in an HNSW graph (filtered out of searches until a rebuild)."""
        return self._structure.tombstones

    def ids(self) -> np.ndarray:
        """Sorted ids of the live vectors held."""
        with self._lock:
            return self._structure.ids()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids."""
        if len(ids) == 0:
            return
        with self._lock:
            ann.use_threads(len(ids))
            self._structure.add(
                np.asarray(ids, dtype=np.int64), np.ascontiguousarray(vectors, dtype=np.float32)
            )
            self.dirty = True

    def remove(self, ids: list[int] | np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        if len(ids) == 0:
            return 0
        with self._lock:
            removed = self._structure.remove(np.asarray(ids, dtype=np.int64))
            self.dirty = self.dirty or removed > 0
            return removed

    def search(self, vector: np.ndarray, k: int, allowed: list[int] | None = None) -> list[Neighbor]:
        """The ``k`` nearest vectors, optionally only among ``allowed`` ids, best first."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        only = None if allowed is None else np.asarray(allowed, dtype=np.int64)
        with self._lock:
            ann.use_threads(1)
            return self._structure.search(query, k, only)

    def replace(self, structure: VectorIndex) -> None:
        """Swap in another structure holding the same entries."""
        with self._lock:
            self._structure = structure
            self.dirty = True

    def save(self, path: Path) -> None:
        """Write the index atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            with self._lock:
                self._structure.write(tmp)
                self.dirty = False
            os.replace(tmp, path)
        except BaseException:
            # a full disk leaves a partial file: never keep it (the old index file stays whole)
            tmp.unlink(missing_ok=True)
            self.dirty = True
            raise


class IndexSet:
    """The indexes of all repos, loaded lazily and kept in step with the store."""

    def __init__(self, store: Store, index_dir: Path, dim: int, params: AnnParams | None = None) -> None:
        self._store = store
        self._dir = index_dir
        self._dim = dim
        self.params = params or AnnParams()
        self._indexes: dict[str, RepoIndex] = {}
        self._generations: dict[str, int] = {}
        # Held across a store write and the matching index change, so a reconcile never sees half.
        self.lock = threading.RLock()
        self._data_version = store.data_version()

    def path(self, repo: str) -> Path:
        """The file a repo's index is saved to."""
        return self._dir / f"{repo}.faiss"

    def get(self, repo: str) -> RepoIndex:
        """The repo's index: loaded from its file or rebuilt, and reconciled with the store."""
        with self.lock:
            index = self._indexes.get(repo)
            if index is None:
                structure = structures.read(self.path(repo), self._dim, self.params)
                rebuilt = structure is None
                if structure is None:
                    # Exact first: seconds even at 1 M entries, where a graph takes minutes; the
                    # sweep's maintain() turns it into a graph off the lock. A repo that will get
                    # one holds int8 codes meanwhile, so the two never take 1.5 GB each at 1 M.
                    entries = self._store.count(repo)
                    kind = "flat" if self.params.kind_for(entries) == "flat" else "flat8"
                    structure = self._build(repo, kind, entries)
                index = RepoIndex(structure)
                index.dirty = rebuilt and structure.size > 0
                self._note_generation(repo)
                self._reconcile(repo, index)
                self._indexes[repo] = index
            return index

    def load_all(self) -> list[str]:
        """Load and check every repo's index (start-up); returns the repos loaded."""
        repos = list(self._store.repos())
        for repo in repos:
            self.get(repo)
        return repos

    def empty(self, repo: str) -> None:
        """Give a repo an empty in-memory index (its entries are about to go; see ``drop``)."""
        with self.lock:
            self._indexes[repo] = RepoIndex(structures.empty("flat", self._dim, self.params))
            self._note_generation(repo)

    def _note_generation(self, repo: str) -> None:
        """Remember the store's generation of a repo whose index now matches the store."""
        self._generations[repo] = self._store.generations().get(repo, 0)

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

    def maintain(self) -> list[str]:
        """Give every loaded index the structure its size calls for: HNSW past ``min_entries``, flat
        again below half of it, and a fresh graph once tombstones pass ``max_tombstone_fraction``.
        The new structure is built from the store without holding the lock, then reconciled with
        the store under it and swapped in. Returns the repos rebuilt."""
        with self.lock:
            todo = [
                (repo, index, kind)
                for repo, index in self._indexes.items()
                if (kind := self._wanted(index)) is not None
            ]
        rebuilt = []
        for repo, index, kind in todo:
            structure = self._build(repo, kind, index.size)
            with self.lock:
                if self._indexes.get(repo) is not index:  # purged meanwhile
                    continue
                self._reconcile(repo, RepoIndex(structure))
                index.replace(structure)
            log.info("index of repo %s rebuilt as %s (%d entries)", repo, kind, index.size)
            rebuilt.append(repo)
        return rebuilt

    def _wanted(self, index: RepoIndex) -> str | None:
        kind = self.params.kind_for(index.size, index.kind)
        if kind != index.kind:
            return kind
        if kind == "hnsw":
            crowded = index.tombstones > self.params.max_tombstone_fraction * max(index.size, 1)
            return kind if crowded else None
        if kind == "ivf":
            sized_for = index.sized_for or 1
            return kind if not sized_for / 2 <= index.size <= 2 * sized_for else None
        return None

    def _build(self, repo: str, kind: str, entries: int = 0) -> VectorIndex:
        """A structure of ``kind`` from the store's vectors; IVF's lists are sized for ``entries`` (the
        reconciled index's size, so the store's ids are not read again)."""
        batches = self._store.vector_batches(repo)
        if kind != "ivf":
            return structures.build(kind, self._dim, self.params, batches, None, entries)
        want = ivf.POINTS_PER_LIST * ivf.lists_for(entries)
        # The sample is passed without a name here, so build() can free it once the lists are fitted.
        return structures.build(
            kind,
            self._dim,
            self.params,
            batches,
            structures.training_sample(self._store.vector_batches(repo), entries, want),
            entries,
        )

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
            index.add(*self._store.vectors_of(repo, missing))
        if len(stale) or len(missing):
            log.info(
                "index of repo %s reconciled: %d stale removed, %d added", repo, len(stale), len(missing)
            )
