"""Online calibration's maths (semcache/decision/online.py): pure arrays in, thresholds out."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.decision.online import Combiner, OnlineFit, fit_combiner, fit_online


def labels_where_the_cosine_decides(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    similarity = rng.uniform(0.7, 1.0, n)
    score = rng.uniform(0.0, 1.0, n)  # a score that knows nothing
    right = (rng.uniform(size=n) < 1 / (1 + np.exp(-60 * (similarity - 0.88)))).astype(int)
    return score, similarity, right, np.ones(n)


def test_a_repo_where_the_cosine_decides_learns_to_lean_on_it() -> None:
    combiner = fit_combiner(*labels_where_the_cosine_decides(3000))
    assert combiner.b > 1.0 and combiner.a < 0.3


def test_few_labels_keep_the_shipped_threshold_and_weights() -> None:
    score, similarity, right, weight = labels_where_the_cosine_decides(150)
    assert fit_online(score, similarity, right, weight, min_labels=200) is None
    one_sided = fit_online(score, similarity, np.ones(150, dtype=int), weight, min_labels=100)
    assert one_sided is not None and one_sided.combiner == Combiner()  # one outcome only: no reweighing


def test_the_threshold_bounds_the_served_wrong_share() -> None:
    fit = fit_online(*labels_where_the_cosine_decides(5000), min_labels=200)
    assert fit is not None
    for budget in (0.05, 0.1, 0.2):
        threshold = fit.threshold(budget)
        estimate = fit.estimate(threshold)
        assert estimate.share <= budget and estimate.labels > 50


def test_audit_weights_count_a_sampled_hit_as_many() -> None:
    # 20 near misses at low scores, all wrong; 10 audited hits (weight 20), 1 wrong: served share 1/10.
    score = np.r_[np.full(20, 0.3), np.full(10, 0.9)]
    right = np.r_[np.zeros(20), np.ones(9), 0].astype(int)
    weight = np.r_[np.ones(20), np.full(10, 20.0)]
    fit = OnlineFit.of(Combiner(), score, score, right, weight)
    estimate = fit.estimate(0.9)
    assert estimate.share == 0.1 and estimate.effective == 10.0  # ten labels, however heavy
    assert fit.estimate(0.3).share == (20 + 20) / (20 + 200)


def test_no_label_no_threshold() -> None:
    score, similarity, _, weight = labels_where_the_cosine_decides(400)
    fit = fit_online(score, similarity, np.zeros(400, dtype=int), weight, min_labels=200)
    assert fit is not None and math.isinf(fit.threshold(0.1))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 0.3), st.floats(0.01, 0.3))
def test_a_stricter_budget_never_lowers_the_threshold(seed: int, a: float, b: float) -> None:
    fit = fit_online(*labels_where_the_cosine_decides(600, seed), min_labels=200)
    assert fit is not None
    strict, loose = min(a, b), max(a, b)
    assert fit.threshold(strict) >= fit.threshold(loose)
