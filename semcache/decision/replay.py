"""Replaying a clustered prompt stream through a cache, to calibrate the decision by lookup.

Every prompt is looked up among the prompts before it and then stored (as a cache that misses on it
would). A lookup meets its ``top_n`` most similar earlier prompts above the cosine ``floor``, most similar
first, and serves the first whose score reaches the threshold, exactly as ``SemanticCache.lookup`` does.
A served answer is right when the two prompts share a cluster. So "budget b" means what an operator
reads it as: of the hits a cache serves, at most b are wrong (with the cache's own neighbours, not
isolated pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from semcache.decision.calibration import Point, clopper_pearson_upper

NONE = -np.inf  # the score of a candidate slot no candidate fills


@dataclass(frozen=True)
class StreamLookups:
    """Each lookup's candidates: their score (``NONE`` for an empty slot), whether each is right, whether
    any earlier prompt was right (the oracle could hit), and which earlier prompt each is (-1: none)."""

    scores: np.ndarray
    right: np.ndarray
    oracle: np.ndarray
    candidates: np.ndarray


def neighbours(
    vectors: np.ndarray, top_n: int, floor: float, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """For each prompt, its ``top_n`` most similar earlier prompts with cosine >= ``floor``: (indices,
    cosines), most similar first, -1 / NaN where fewer qualify."""
    count = len(vectors)
    found = np.full((count, top_n), -1, dtype=np.int64)
    cosines = np.full((count, top_n), np.nan, dtype=np.float32)
    for start in range(0, count, block):
        stop = min(start + block, count)
        sims = vectors[start:stop] @ vectors[:stop].T
        rows = np.arange(stop - start)
        sims[rows[:, None] + start <= np.arange(stop)[None, :]] = -np.inf  # only earlier prompts
        take = min(top_n, stop)
        best = (
            np.argpartition(-sims, take - 1, axis=1)[:, :take]
            if stop > take
            else np.argsort(-sims, axis=1)[:, :take]
        )
        best_sims = np.take_along_axis(sims, best, axis=1)
        order = np.argsort(-best_sims, axis=1)
        best, best_sims = (
            np.take_along_axis(best, order, axis=1),
            np.take_along_axis(best_sims, order, axis=1),
        )
        keep = best_sims >= floor
        found[start:stop, :take] = np.where(keep, best, -1)
        cosines[start:stop, :take] = np.where(keep, best_sims, np.nan)
    return found, cosines


def replay(
    vectors: np.ndarray,
    clusters: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    top_n: int,
    floor: float,
) -> StreamLookups:
    """Replay a stream: ``score(query_indices, candidate_indices, cosines)`` scores pairs in bulk."""
    found, cosines = neighbours(vectors, top_n, floor)
    scores = np.full(found.shape, NONE)
    slots = np.nonzero(found >= 0)
    if len(slots[0]):
        scores[slots] = score(slots[0], found[slots], cosines[slots])
    right = (found >= 0) & (clusters[np.maximum(found, 0)] == clusters[:, None])
    return StreamLookups(scores, right, _oracle(clusters), found)


def _oracle(clusters: np.ndarray) -> np.ndarray:
    """Whether each prompt's cluster appeared before it."""
    seen: set = set()
    out = np.zeros(len(clusters), dtype=bool)
    for i, cluster in enumerate(clusters.tolist()):
        out[i] = cluster in seen
        seen.add(cluster)
    return out


def served(lookups: StreamLookups, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(served, right) per lookup at ``threshold``: the first candidate reaching it is served."""
    passing = lookups.scores >= threshold
    hit = passing.any(axis=1)
    first = passing.argmax(axis=1)
    right = hit & lookups.right[np.arange(len(first)), first]
    return hit, right


def stream_sweep(lookups: StreamLookups, confidence: float = 0.95, max_points: int = 400) -> list[Point]:
    """The operating point of every candidate threshold (thinned), strictest first: ``recall`` is the
    right hits over the oracle's, ``false_hit_rate`` the wrong share of the hits served."""
    values = np.unique(lookups.scores[np.isfinite(lookups.scores)])[::-1]
    if len(values) > max_points:
        values = values[np.unique(np.linspace(0, len(values) - 1, max_points).astype(int))]
    oracle = max(int(lookups.oracle.sum()), 1)
    points = []
    for threshold in values:
        hit, right = served(lookups, float(threshold))
        n, good = int(hit.sum()), int(right.sum())
        wrong = n - good
        precision, recall = (good / n if n else 1.0), good / oracle
        f1 = 2 * precision * recall / (precision + recall) if good else 0.0
        upper = clopper_pearson_upper(wrong, n, confidence)
        points.append(
            Point(float(threshold), n, wrong, precision, recall, wrong / n if n else 0.0, f1, upper)
        )
    return points
