"""Online calibration: a repo's own labels decide how its decision signals are weighed and where its
threshold sits for a false-hit budget (pure maths: arrays in, numbers out).

Each label is one lookup's best candidate: its decision score, its cosine, whether serving it was right,
and a weight (the inverse of the chance the lookup was labelled: 1 for a near miss, 1/r for a hit
audited at rate r). Weighted, the labels stand for every lookup that had a candidate above the cosine
floor, so for a threshold t the served false-hit share is estimated by the weighted wrong share of the
labels at or above t (a Horvitz-Thompson estimate). Its confidence bound is Clopper-Pearson on the
effective sample size (Kish: (Σw)² / Σw²), which a few heavy audit labels keep honest.

The signals are combined as ``p = sigmoid(a·logit(score) + b·z(cosine) + c)``: the shipped combination
is the score alone (a = 1, b = c = 0); a repo's labels fit a, b, c by weighted logistic regression with a
ridge pull towards the shipped weights, so a few labels move them little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from scipy.stats import beta

from semcache.decision.calibration import interval

_EPS = 1e-4
_COSINE_CENTRE, _COSINE_SCALE = 0.85, 10.0  # puts z(cosine) on the scale of a logit over the floor's range


@dataclass(frozen=True)
class Combiner:
    """How a repo weighs the decision's score and the cosine; the default is the score alone."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0

    def __call__(self, score: np.ndarray | float, similarity: np.ndarray | float) -> np.ndarray:
        """The combined score in (0, 1), higher = more likely right."""
        return expit(self.a * _logit(score) + self.b * _z(similarity) + self.c)


def _logit(score: np.ndarray | float) -> np.ndarray:
    return logit(np.clip(np.asarray(score, dtype=np.float64), _EPS, 1 - _EPS))


def _z(similarity: np.ndarray | float) -> np.ndarray:
    return (np.asarray(similarity, dtype=np.float64) - _COSINE_CENTRE) * _COSINE_SCALE


def fit_combiner(
    score: np.ndarray, similarity: np.ndarray, label: np.ndarray, weight: np.ndarray, ridge: float = 20.0
) -> Combiner:
    """Weighted logistic regression of ``label`` on (logit(score), z(cosine), 1), pulled towards the
    shipped weights by ``ridge`` (in units of label weight); weights of a signal never go negative."""
    x = np.column_stack([_logit(score), _z(similarity), np.ones(len(score))])
    y, w = np.asarray(label, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    prior = np.array([1.0, 0.0, 0.0])
    pull = np.array([ridge, ridge, 0.0])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        # log(1 + e^z) - y·z, computed without overflow
        value = float(np.sum(w * (np.logaddexp(0.0, z) - y * z))) + 0.5 * float(pull @ (theta - prior) ** 2)
        gradient = x.T @ (w * (expit(z) - y)) + pull * (theta - prior)
        return value, gradient

    bounds = [(0.0, None), (0.0, None), (None, None)]  # a signal's weight never goes negative
    theta = minimize(loss, prior, jac=True, method="L-BFGS-B", bounds=bounds).x
    a, b = float(theta[0]), float(theta[1])
    if a == b == 0.0:  # the labels say neither signal helps: keep the shipped ranking
        return Combiner()
    return Combiner(a, b, float(theta[2]))


@dataclass(frozen=True)
class Estimate:
    """The weighted false-hit share of what a threshold serves, with its 95 % interval."""

    share: float
    low: float
    high: float
    labels: int  # labels at or above the threshold
    effective: float  # their effective sample size


@dataclass
class OnlineFit:
    """A repo's fitted combination and its labels ranked by it: thresholds for any budget on demand."""

    combiner: Combiner
    labels: int
    confidence: float = 0.95
    _p: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _upper: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _sums: tuple[np.ndarray, np.ndarray, np.ndarray] = field(default=(np.zeros(0),) * 3, repr=False)

    @classmethod
    def of(
        cls,
        combiner: Combiner,
        score: np.ndarray,
        similarity: np.ndarray,
        label: np.ndarray,
        weight: np.ndarray,
        confidence: float = 0.95,
    ) -> OnlineFit:
        """Rank the labels by ``combiner`` and bound the served false-hit share at every cut."""
        p = combiner(score, similarity)
        order = np.argsort(-p, kind="stable")
        p, y, w = p[order], np.asarray(label)[order], np.asarray(weight, dtype=np.float64)[order]
        served, wrong, squares = np.cumsum(w), np.cumsum(w * (1 - y)), np.cumsum(w * w)
        upper = _upper_bound(wrong, served, squares, confidence)
        last_of_run = np.r_[p[1:] != p[:-1], True]  # only the last label of a run of equal p is a cut
        upper = np.where(last_of_run, upper, np.inf)
        return cls(combiner, len(p), confidence, p, upper, (served, wrong, squares))

    def threshold(self, budget: float) -> float:
        """The lowest combined score whose served false-hit share is bounded within ``budget`` at the
        fit's confidence; ``inf`` when no threshold is."""
        ok = np.nonzero(self._upper <= budget)[0]
        return float(self._p[ok.max()]) if len(ok) else math.inf

    def estimate(self, threshold: float) -> Estimate:
        """The weighted false-hit share of labels scoring at or above ``threshold``."""
        # within 1e-9: a raw threshold compared with the identity combination's round trip through logit
        count = int(np.searchsorted(-self._p, -(threshold - 1e-9), side="right"))
        if count == 0:
            return Estimate(0.0, 0.0, 1.0, 0, 0.0)
        served, wrong, squares = (s[count - 1] for s in self._sums)
        n = served * served / squares
        share = wrong / served
        low, high = interval(share * n, n, self.confidence)  # Clopper-Pearson on the effective size
        return Estimate(float(share), low, high, count, float(n))


def _upper_bound(wrong: np.ndarray, served: np.ndarray, squares: np.ndarray, confidence: float) -> np.ndarray:
    """Clopper-Pearson upper bound of weighted wrong / served on the effective sample size."""
    n = served * served / squares
    bad = wrong / served * n
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = beta.ppf(confidence, bad + 1, np.maximum(n - bad, 1e-9))
    return np.where(bad >= n, 1.0, upper)


def fit_online(
    score: np.ndarray,
    similarity: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray,
    min_labels: int,
    confidence: float = 0.95,
) -> OnlineFit | None:
    """A repo's online fit from its labels; None with fewer than ``min_labels`` (the offline threshold
    stays). The weights are refitted only when both outcomes have a few labels."""
    if len(label) < min_labels:
        return None
    both = min(int(np.sum(label == 1)), int(np.sum(label == 0))) >= 10
    combiner = fit_combiner(score, similarity, label, weight) if both else Combiner()
    return OnlineFit.of(combiner, score, similarity, label, weight, confidence)
