"""Calibrating a decision threshold to a false-hit budget.

A *false hit* is a served answer that is wrong for the request. For a threshold t, the served pairs are
those scoring >= t; the false-hit rate is wrong / served. We choose the lowest threshold (most hits)
whose Clopper-Pearson upper bound on that rate, at the given confidence, stays under the budget.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import beta


def interval(hits: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of hits / total."""
    tail = (1 - confidence) / 2
    low = float(beta.ppf(tail, hits, total - hits + 1)) if hits else 0.0
    return low, clopper_pearson_upper(hits, total, 1 - tail)


def two_sided(counts: tuple[int, int], verdicts: tuple[list[str], list[str]]) -> dict:
    """The real false-hit share of served hits, ``counts[0]`` labelled wrong and ``counts[1]`` labelled
    right, from a reader's verdicts ("same" / "different") on a random sample of each: labelled-wrong hits
    one answer serves are right, and labelled-right hits it does not serve are wrong. Its 95 % interval
    joins each side's 97.5 % interval (Bonferroni). nan when a side is unaudited."""
    served = max(sum(counts), 1)
    sides = []
    for count, side in zip(counts, verdicts, strict=True):
        real = sum(v == "different" for v in side)
        low, high = interval(real, len(side), 0.975)
        # A side with no hits adds nothing, audited or not; one with hits but no verdicts is unknown.
        share = real / len(side) if side else (0.0 if count == 0 else float("nan"))
        sides.append((real, share, low if side else share, high if side else share))
    share, low, high = (
        sum(n * side[k] for n, side in zip(counts, sides, strict=True)) / served for k in (1, 2, 3)
    )
    return {
        "share": share,
        "interval": [low, high],
        "audited": [len(v) for v in verdicts],
        "really_wrong": [side[0] for side in sides],
    }


def clopper_pearson_upper(wrong: int, served: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial proportion (exact, conservative)."""
    if served == 0:
        return 1.0
    if wrong >= served:
        return 1.0
    return float(beta.ppf(confidence, wrong + 1, served - wrong))


def min_support(budget: float, confidence: float = 0.95) -> int:
    """The fewest served hits whose Clopper-Pearson upper bound can be within ``budget``: even with none
    wrong, ``n`` hits bound the false-hit rate by 1 - (1 - confidence)^(1/n) (59 for 0.05 at 95 %)."""
    n = max(1, math.ceil(math.log(1 - confidence) / math.log(1 - budget)))
    while n > 1 and clopper_pearson_upper(0, n - 1, confidence) <= budget:  # float rounding, either way
        n -= 1
    while clopper_pearson_upper(0, n, confidence) > budget:
        n += 1
    return n


@dataclass(frozen=True)
class Point:
    """Precision, recall and false-hit rate of one threshold."""

    threshold: float
    served: int
    wrong: int
    precision: float
    recall: float
    false_hit_rate: float
    f1: float
    false_hit_upper: float


def sweep(
    scores: np.ndarray, labels: np.ndarray, confidence: float = 0.95, max_points: int = 400
) -> list[Point]:
    """Every distinct threshold (thinned to ``max_points``), from strictest to loosest."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(int)
    positives = max(int(y.sum()), 1)
    true_hits = np.cumsum(y)
    # Only the last index of each run of equal scores is a valid cut.
    cuts = np.nonzero(np.r_[s[1:] != s[:-1], True])[0]
    if len(cuts) > max_points:
        cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, max_points).astype(int))]
    points = []
    for i in cuts:
        served, tp = int(i + 1), int(true_hits[i])
        wrong = served - tp
        precision, recall = tp / served, tp / positives
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        upper = clopper_pearson_upper(wrong, served, confidence)
        points.append(Point(float(s[i]), served, wrong, precision, recall, wrong / served, f1, upper))
    return points


def fit_threshold(points: list[Point], budget: float) -> Point | None:
    """The most permissive point whose upper-bounded false-hit rate is within ``budget``."""
    ok = [p for p in points if p.false_hit_upper <= budget]
    return min(ok, key=lambda p: p.threshold) if ok else None


def recall_at_precision(points: list[Point], precision: float) -> float:
    """The best recall among thresholds reaching ``precision`` (0 when none does)."""
    return max((p.recall for p in points if p.precision >= precision), default=0.0)


def summary(points: list[Point]) -> dict[str, float]:
    """Recall at precision 0.90 / 0.95 / 0.99 and precision at recall 0.50."""
    at_half = [p.precision for p in points if p.recall >= 0.5]
    return {
        "recall_at_p90": recall_at_precision(points, 0.90),
        "recall_at_p95": recall_at_precision(points, 0.95),
        "recall_at_p99": recall_at_precision(points, 0.99),
        "precision_at_r50": max(at_half) if at_half else 0.0,
        "best_f1": max((p.f1 for p in points), default=0.0),
    }


def as_dicts(points: list[Point]) -> list[dict[str, float]]:
    """Points as plain dicts, for JSON reports."""
    return [asdict(p) for p in points]
