"""The vector structures behind a repo's index, and the interface they share: exact (flat) below a size
threshold, IVF (the default, in :mod:`semcache.index.ivf`) or HNSW above it; :mod:`semcache.index.files` makes
and reads them.

All map store row ids to normalized vectors (inner product = cosine), so
:class:`semcache.index.sets.RepoIndex` can swap one for the other. HNSW graphs cannot delete nodes: a
removed id becomes a tombstone that every search filters out, and the graph is rebuilt from the store
once tombstones pile up (see :meth:`semcache.index.sets.IndexSet.maintain`). Tombstones are not saved: on
load the store no longer holds those ids, so the reconcile marks them again.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

# A filtered HNSW search widens efSearch by 1 / selectivity, up to this.
MAX_FILTERED_EF = 4096


@dataclass(frozen=True)
class Neighbor:
    """A vector found by a search: its store id and cosine similarity to the query."""

    id: int
    similarity: float


@dataclass(frozen=True)
class AnnParams:
    """When a repo's index becomes approximate, which structure it becomes, and how that is built and
    searched. The sidecar builds them from its ``SEMCACHE_ANN_*`` settings (``Settings.ann_params``);
    these defaults are the settings' defaults (a test pins them together)."""

    min_entries: int = 50_000
    structure: str = "ivf"  # or "hnsw"
    nprobe: int = 96
    m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    max_tombstone_fraction: float = 0.1
    # A restricted search over at most this many ids scores their vectors exactly; above it the
    # filtered graph search is used, which is only reliable when the allowed ids are not too rare.
    exact_restricted_max: int = 20_000

    def kind_for(self, entries: int, current: str | None = None) -> str:
        """The structure a repo of ``entries`` should use; halfway back down before HNSW is dropped,
        so a repo near the threshold does not flip back and forth."""
        if entries > self.min_entries:
            return self.structure
        if current == self.structure and entries > self.min_entries // 2:
            return self.structure
        return "flat"


class VectorIndex(Protocol):
    """What a repo's index structure offers; not thread-safe (RepoIndex locks around it)."""

    kind: str

    @property
    def size(self) -> int: ...

    @property
    def tombstones(self) -> int: ...

    @property
    def sized_for(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[Neighbor]: ...

    def write(self, path: Path) -> None: ...


def use_threads(items: int) -> None:
    """Pick the OpenMP threads of the calling thread's next FAISS calls (the setting is per thread):
    one for a single query or a handful of vectors, where waking and spinning threads costs more
    than the work itself (ten times the latency of a lookup on a busy two-core machine), every core
    for bulk adds."""
    faiss.omp_set_num_threads((os.cpu_count() or 1) if items >= 1000 else 1)


def found_neighbors(scores: np.ndarray, ids: np.ndarray) -> list[Neighbor]:
    return [Neighbor(int(i), float(s)) for s, i in zip(scores, ids, strict=True) if i >= 0]


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int, ids: np.ndarray) -> list[Neighbor]:
    """The ``k`` of ``vectors`` (stored under ``ids``) most similar to ``query``, best first: how a
    restricted search over a few allowed ids is scored."""
    scores = vectors @ query[0]
    top = np.argsort(-scores)[:k] if len(scores) <= k else np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top])]
    return found_neighbors(scores[top], ids[top])


class FlatIndex:
    """Exact inner-product search over every vector, held as float32 (``flat``) or as int8 codes
    (``flat8``: a quarter of the memory; what a big repo holds until its ANN structure is built)."""

    sized_for = 0

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        self._index = index
        inner = faiss.downcast_index(index.index)
        self.kind = "flat8" if isinstance(inner, faiss.IndexScalarQuantizer) else "flat"

    @classmethod
    def empty(cls, dim: int) -> FlatIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def filled(
        cls, dim: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], expected: int, int8: bool = False
    ) -> FlatIndex:
        """A flat index of the batches' vectors, written into one buffer sized for ``expected`` rows.
        Adding batch by batch grows faiss's code vector by doubling, and old and new buffers coexist
        while it grows: at 1 M entries that peaked at 2.6 GB for a 1.5 GB index, against 1.76 GB here.
        With ``int8`` the codes are int8, each dimension's range fitted on the first batch (0.38 GB at
        1 M entries). Rows past ``expected`` (the store grew meanwhile) are added the usual way."""
        batches = iter(batches)
        first = next(batches, None)
        if first is None or not len(first[0]):
            return cls.empty(dim)
        inner = faiss.IndexFlatIP(dim) if not int8 else int8_codes(dim, first[1])
        index = faiss.IndexIDMap2(inner)
        size = inner.code_size
        inner.codes.resize(expected * size)
        codes = faiss.rev_swig_ptr(inner.codes.data(), expected * size).reshape(expected, size)
        ids, n, extra = np.empty(expected, dtype=np.int64), 0, []
        for batch_ids, vectors in itertools.chain([first], batches):
            take = min(len(batch_ids), expected - n)
            codes[n : n + take] = inner.sa_encode(np.ascontiguousarray(vectors[:take], dtype=np.float32))
            ids[n : n + take] = batch_ids[:take]
            n += take
            if take < len(batch_ids):
                extra.append((batch_ids[take:], vectors[take:]))
        inner.codes.resize(n * size)  # fewer rows than expected: the store shrank meanwhile
        inner.ntotal = index.ntotal = n
        faiss.copy_array_to_vector(ids[:n], index.id_map)
        index.construct_rev_map()
        out = cls(index)
        for batch_ids, vectors in extra:
            out.add(np.ascontiguousarray(batch_ids), np.ascontiguousarray(vectors, dtype=np.float32))
        return out

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def tombstones(self) -> int:
        return 0

    def ids(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        return int(self._index.remove_ids(ids))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[Neighbor]:
        params = None if allowed is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        k = min(k, self.size)
        if k <= 0:
            return []
        scores, ids = self._index.search(query, k, params=params)
        return found_neighbors(scores[0], ids[0])

    def write(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))


def int8_codes(dim: int, sample: np.ndarray) -> faiss.IndexScalarQuantizer:
    """An empty inner-product index of int8 codes, each dimension's range fitted on ``sample`` and
    widened by a fifth on each side, so later vectors outside the sample's range are rarely clipped
    (measured on random unit vectors: self-similarity at least 0.998 at 384 dimensions)."""
    index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.sq.rangestat = faiss.ScalarQuantizer.RS_minmax
    index.sq.rangestat_arg = 0.2
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


class SortedIds:
    """A growing sorted set of int64 ids; appending larger ids (the usual case: row ids only grow)
    is amortized O(1), anything else merges."""

    def __init__(self, ids: np.ndarray) -> None:
        self._buf = np.unique(np.asarray(ids, dtype=np.int64))
        self._n = len(self._buf)

    def __len__(self) -> int:
        return self._n

    def array(self) -> np.ndarray:
        return self._buf[: self._n]

    def add(self, ids: np.ndarray) -> None:
        ids = np.unique(ids)
        if self._n and len(ids) and ids[0] <= self._buf[self._n - 1]:
            self._buf = np.union1d(self.array(), ids)
            self._n = len(self._buf)
            return
        if self._n + len(ids) > len(self._buf):
            grown = np.empty(max(16, 2 * (self._n + len(ids))), dtype=np.int64)
            grown[: self._n] = self.array()
            self._buf = grown
        self._buf[self._n : self._n + len(ids)] = ids
        self._n += len(ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``ids`` are in the set."""
        held = self.array()
        at = np.minimum(np.searchsorted(held, ids), max(self._n - 1, 0))
        return (held[at] == ids) if self._n else np.zeros(len(ids), dtype=bool)


class HnswIndex:
    """Approximate search on an HNSW graph; removed ids are tombstones filtered out of every search."""

    kind = "hnsw"
    sized_for = 0

    def __init__(self, index: faiss.IndexIDMap2, params: AnnParams) -> None:
        self._index = index
        self._ef_search = params.ef_search
        self._exact_max = params.exact_restricted_max
        self._held = SortedIds(faiss.vector_to_array(index.id_map))
        self._dead = SortedIds(np.zeros(0, dtype=np.int64))
        self._live_filter: tuple[faiss.IDSelector, ...] = ()

    @classmethod
    def empty(cls, dim: int, params: AnnParams) -> HnswIndex:
        graph = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = params.ef_construction
        return cls(faiss.IndexIDMap2(graph), params)

    @property
    def size(self) -> int:
        return len(self._held) - len(self._dead)

    @property
    def tombstones(self) -> int:
        return len(self._dead)

    def ids(self) -> np.ndarray:
        return np.setdiff1d(self._held.array(), self._dead.array(), assume_unique=True)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        fresh = ~self._held.contains(ids)  # a held id (live or dead) is never added twice
        if fresh.any():
            self._index.add_with_ids(vectors[fresh], ids[fresh])
            self._held.add(ids[fresh])

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(ids)
        gone = ids[self._held.contains(ids) & ~self._dead.contains(ids)]
        if len(gone):
            self._dead.add(gone)
            self._live_filter = ()
        return len(gone)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[Neighbor]:
        if allowed is None:
            return self._search_graph(query, k, self._live_selector(), self._ef_search)
        allowed = np.unique(allowed)
        allowed = allowed[self._held.contains(allowed) & ~self._dead.contains(allowed)]
        if len(allowed) <= self._exact_max:
            return self._search_exact(query, k, allowed)
        widen = math.ceil(self.size / len(allowed))
        selector = faiss.IDSelectorBatch(allowed)
        return self._search_graph(query, k, selector, min(self._ef_search * widen, MAX_FILTERED_EF))

    def _live_selector(self) -> faiss.IDSelector | None:
        if not len(self._dead):
            return None
        if not self._live_filter:
            dead = faiss.IDSelectorBatch(self._dead.array())
            self._live_filter = (faiss.IDSelectorNot(dead), dead)  # keep the inner selector alive
        return self._live_filter[0]

    def _search_graph(
        self, query: np.ndarray, k: int, selector: faiss.IDSelector | None, ef: int
    ) -> list[Neighbor]:
        k = min(k, self.size)
        if k <= 0:
            return []
        params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(query, k, params=params)
        return found_neighbors(scores[0], ids[0])

    def _search_exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> list[Neighbor]:
        if not len(allowed) or k <= 0:
            return []
        return exact_top(self._index.reconstruct_batch(allowed), query, k, allowed)

    def write(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))
