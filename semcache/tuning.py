"""``semcache tune``: fit the decision threshold on labelled pairs so that the false-hit rate's upper
confidence bound stays within a budget, and report precision / recall / false-hit rate per threshold
for cosine and for the verifier."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semcache.calibration import Point, as_dicts, fit_threshold, summary, sweep
from semcache.verifier import Verifier

NOT_SERVED = -1.0  # the score of a pair whose cosine is under the pre-filter: never a hit


@dataclass(frozen=True)
class LabelledPair:
    """Two prompts and whether one cached answer serves both."""

    a: str
    b: str
    label: int


@dataclass(frozen=True)
class PairScores:
    """Cosine and verifier scores of labelled pairs."""

    labels: np.ndarray
    cosine: np.ndarray
    verifier: np.ndarray


@dataclass(frozen=True)
class TuneResult:
    """The fitted operating point (None when no threshold meets the budget) and the curves."""

    verifier: str
    budget: float
    confidence: float
    pairs: int
    positives: int
    chosen: Point | None
    cosine_chosen: Point | None
    curves: dict[str, list[Point]]


def load_pairs(path: Path) -> list[LabelledPair]:
    """Read ``{"a", "b", "label"}`` rows from a JSONL file."""
    pairs = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pairs.append(LabelledPair(str(row["a"]), str(row["b"]), int(row["label"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: expected {{'a', 'b', 'label'}}: {exc}") from exc
    if not pairs:
        raise ValueError(f"{path} holds no pairs")
    return pairs


def score_pairs(
    pairs: list[LabelledPair], embed: Callable[[list[str]], np.ndarray], verifier: Verifier, floor: float
) -> PairScores:
    """Cosine of each pair and the verifier's score (``NOT_SERVED`` under the cosine pre-filter)."""
    left = embed([p.a for p in pairs])
    right = embed([p.b for p in pairs])
    cosine = np.einsum("ij,ij->i", left, right).astype(np.float64)
    scores = np.full(len(pairs), NOT_SERVED)
    keep = np.nonzero(cosine >= floor)[0]
    if len(keep):
        scores[keep] = verifier.score([(pairs[i].b, pairs[i].a) for i in keep], cosine[keep])
    return PairScores(np.array([p.label for p in pairs]), cosine, scores)


def tune(scores: PairScores, verifier: str, budget: float, confidence: float = 0.95) -> TuneResult:
    """Fit the verifier's threshold (and, for comparison, a cosine threshold) to ``budget``."""
    served = scores.verifier > NOT_SERVED
    curve = sweep(np.where(served, scores.verifier, NOT_SERVED), scores.labels, confidence)
    curve = [p for p in curve if p.threshold > NOT_SERVED]
    cosine_curve = sweep(scores.cosine, scores.labels, confidence)
    return TuneResult(
        verifier=verifier, budget=budget, confidence=confidence, pairs=len(scores.labels),
        positives=int(scores.labels.sum()), chosen=fit_threshold(curve, budget),
        cosine_chosen=fit_threshold(cosine_curve, budget), curves={verifier: curve, "cosine": cosine_curve},
    )  # fmt: skip


def report(result: TuneResult) -> dict:
    """The tuning outcome as JSON-ready data."""

    def point(p: Point | None) -> dict | None:
        return None if p is None else {k: getattr(p, k) for k in Point.__dataclass_fields__}

    return {
        "verifier": result.verifier, "budget": result.budget, "confidence": result.confidence,
        "pairs": result.pairs, "positives": result.positives,
        "chosen": point(result.chosen), "cosine_chosen": point(result.cosine_chosen),
        "summary": {name: summary(curve) for name, curve in result.curves.items()},
        "curves": {name: as_dicts(curve) for name, curve in result.curves.items()},
    }  # fmt: skip


def plot(result: TuneResult, path: Path) -> None:
    """Precision, recall and false-hit rate against the threshold, for cosine and the verifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result.curves), figsize=(6 * len(result.curves), 4.2), squeeze=False)
    for ax, (name, curve) in zip(axes[0], result.curves.items(), strict=True):
        t = [p.threshold for p in curve]
        ax.plot(t, [p.precision for p in curve], label="precision")
        ax.plot(t, [p.recall for p in curve], label="recall")
        ax.plot(t, [p.false_hit_rate for p in curve], label="false-hit rate")
        ax.plot(t, [p.false_hit_upper for p in curve], ":", label=f"false-hit {result.confidence:.0%} upper")
        ax.axhline(result.budget, color="grey", lw=0.8, ls="--", label=f"budget {result.budget}")
        chosen = result.chosen if name == result.verifier else result.cosine_chosen
        if chosen is not None:
            ax.axvline(chosen.threshold, color="black", lw=0.8, label=f"chosen {chosen.threshold:.3f}")
        ax.set_title(f"{name} ({result.pairs} pairs)")
        ax.set_xlabel("threshold")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
