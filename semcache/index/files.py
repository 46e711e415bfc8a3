"""Making and reading a repo's vector structure: flat, HNSW or IVF (see :mod:`semcache.index.ann`,
:mod:`semcache.index.ivf`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from semcache.index.ann import AnnParams, FlatIndex, HnswIndex, VectorIndex, use_threads
from semcache.index.ivf import IvfIndex

log = logging.getLogger(__name__)


def empty(kind: str, dim: int, params: AnnParams) -> VectorIndex:
    """A new, empty structure of ``kind`` ('flat', 'flat8' or 'hnsw'; IVF needs a sample: see
    :func:`build`). An empty 'flat8' is a float one: int8 codes need vectors to fit their ranges."""
    return HnswIndex.empty(dim, params) if kind == "hnsw" else FlatIndex.empty(dim)


def training_sample(batches: Iterable[tuple[np.ndarray, np.ndarray]], entries: int, want: int) -> np.ndarray:
    """About ``want`` vectors spread evenly over a repo of ``entries``, read batch by batch."""
    step = max(1, entries // max(want, 1))
    # A copy, not a view: a view keeps its whole batch alive (at 1 M entries, all 1.5 GB of them).
    picked = [np.array(vectors[::step], dtype=np.float32) for _, vectors in batches if len(vectors)]
    return np.ascontiguousarray(np.concatenate(picked)) if picked else np.zeros((0, 0), dtype=np.float32)


def build(
    kind: str,
    dim: int,
    params: AnnParams,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    sample: np.ndarray | None = None,
    entries: int = 0,
) -> VectorIndex:
    """A structure of ``kind`` filled batch by batch (so the store's vectors are never all in memory
    twice); IVF lists are first fitted on ``sample``, for a repo of ``entries``. A flat index with
    ``entries`` given is written into one buffer of that size (see :meth:`FlatIndex.filled`)."""
    if kind in ("flat", "flat8") and entries:
        return FlatIndex.filled(dim, batches, entries, int8=kind == "flat8")
    if kind == "ivf":
        if sample is None or not len(sample):
            raise ValueError("an IVF index needs a training sample")
        use_threads(len(sample))
        index: VectorIndex = IvfIndex.trained(sample, entries or len(sample), params)
        del sample  # with the caller holding no reference, the sample is freed before the lists fill
    else:
        index = empty(kind, dim, params)
    for ids, vectors in batches:
        use_threads(len(ids))
        if len(ids):
            index.add(
                np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(vectors, dtype=np.float32)
            )
    return index


def read(path: Path, dim: int, params: AnnParams) -> VectorIndex | None:
    """Read a saved structure; None if it is missing, unreadable or of another dimension or kind."""
    if not path.exists():
        return None
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        log.warning("index file %s is unreadable (%s); it will be rebuilt", path, exc)
        return None
    if index.d != dim:
        log.warning("index file %s does not match this build; it will be rebuilt", path)
        return None
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return IvfIndex(index, params)
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    if isinstance(inner, faiss.IndexHNSWFlat):
        return HnswIndex(index, params)
    if isinstance(inner, faiss.IndexFlatIP | faiss.IndexScalarQuantizer):
        return FlatIndex(index)
    log.warning("index file %s holds an unknown structure; it will be rebuilt", path)
    return None
