"""``semcache tune``: fit the decision threshold on labelled pairs so that the false-hit rate's upper
confidence bound stays within a budget, and report precision / recall / false-hit rate per threshold
for cosine and for the decision; by pairs or by replaying a clustered stream (calibration by lookup)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from semcache.decision import Decision, Encoded
from semcache.decision.calibration import Point, as_dicts, fit_threshold, min_support, summary, sweep
from semcache.decision.replay import StreamLookups, replay, stream_sweep

NOT_SERVED = -1.0  # the score of a pair whose cosine is under the pre-filter: never a hit
# A batch of texts through the embedding pass: their vectors and per-token states.
EncodeStates = Callable[[list[str]], tuple[np.ndarray, list[np.ndarray]]]


class Progress(Protocol):
    """Where long work reports how far it got (the CLI shows a progress bar)."""

    def begin(self, what: str, total: int | None) -> None:
        """A new phase of ``total`` steps (None: unknown) starts."""
        ...

    def advance(self, steps: int) -> None:
        """``steps`` more steps of the phase are done."""
        ...


class _Silent:
    def begin(self, what: str, total: int | None) -> None:
        pass

    def advance(self, steps: int) -> None:
        pass


@dataclass(frozen=True)
class Support:
    """How many examples of each kind a file holds, and what each kind is (for messages)."""

    positives: int
    negatives: int
    positive: str
    negative: str


def pair_support(labels: Sequence[int]) -> Support:
    """Pairs labelled 1 and 0."""
    positives = sum(1 for label in labels if label)
    return Support(
        positives,
        len(labels) - positives,
        "pairs labelled 1 (one answer serves both)",
        "pairs labelled 0 (different answers)",
    )


def stream_support(clusters: Sequence[str]) -> Support:
    """Prompts that could be served right (their cluster came before) and prompts that could only be
    served wrong (a new cluster, once anything is cached)."""
    seen: set[str] = set()
    positives = 0
    for cluster in clusters:
        positives += cluster in seen
        seen.add(cluster)
    return Support(
        positives,
        max(len(seen) - 1, 0),
        "prompts whose cluster came earlier (a right hit is possible)",
        "prompts opening a new cluster after the first (only a wrong hit is possible)",
    )


def check_support(support: Support, budget: float, confidence: float, source: str = "the data") -> None:
    """Refuse data that cannot support a threshold: without enough right answers the bound can never
    reach the budget, and without enough wrong ones nothing shows where wrong hits begin (a file of
    positives only once stored a threshold of 0.004). Both kinds need :func:`min_support` examples."""
    need = min_support(budget, confidence)
    missing = [
        f"{need - count} more {kind}"
        for count, kind in ((support.positives, support.positive), (support.negatives, support.negative))
        if count < need
    ]
    if missing:
        raise ValueError(
            f"{source} holds {support.positives} {support.positive} and {support.negatives} "
            f"{support.negative}; a threshold for budget {budget:g} at {confidence:.0%} confidence needs at "
            f"least {need} of each (with fewer, the Clopper-Pearson bound cannot show that the budget "
            f"holds). Missing: {'; '.join(missing)}. No threshold was written."
        )


@dataclass(frozen=True)
class LabelledPair:
    """Two prompts and whether one cached answer serves both."""

    a: str
    b: str
    label: int


@dataclass(frozen=True)
class PairScores:
    """Cosine and decision scores of labelled pairs."""

    labels: np.ndarray
    cosine: np.ndarray
    decision: np.ndarray


@dataclass(frozen=True)
class TuneResult:
    """The fitted operating point (None when no threshold meets the budget) and the curves."""

    decision: str
    budget: float
    confidence: float
    pairs: int
    positives: int
    chosen: Point | None
    cosine_chosen: Point | None
    curves: dict[str, list[Point]]


class TextEncoder:
    """Texts as a lookup holds them (vector and the decision's stored tokens), each encoded once."""

    def __init__(
        self,
        encode_states: EncodeStates,
        decision: Decision,
        batch: int = 256,
        progress: Progress | None = None,
    ) -> None:
        self._encode_states = encode_states
        self._decision = decision
        self._batch = batch
        self.progress = progress or _Silent()
        self.vectors: dict[str, np.ndarray] = {}
        self.encoded: dict[str, Encoded] = {}

    def add(self, texts: list[str]) -> None:
        """Encode the texts not seen yet, shortest first (a batch pads to its longest)."""
        todo = sorted({t for t in texts if t not in self.vectors}, key=len)
        self.progress.begin("embedding texts", len(todo))
        for start in range(0, len(todo), self._batch):
            chunk = todo[start : start + self._batch]
            vectors, states = self._encode_states(chunk)
            for text, vector, tokens in zip(chunk, vectors, states, strict=True):
                self.vectors[text] = vector
                self.encoded[text] = Encoded(text, self._decision.tokens(tokens))
            self.progress.advance(len(chunk))

    def score(self, left: list[str], right: list[str], cosines: np.ndarray) -> np.ndarray:
        """The decision's score of each (query, cached prompt) pair."""
        self.progress.begin("scoring pairs", len(left))
        scores = np.empty(len(left), dtype=np.float64)
        for i, (a, b, c) in enumerate(zip(left, right, cosines, strict=True)):
            scores[i] = self._decision.score(self.encoded[a], [self.encoded[b]], np.array([c]))[0]
            if i % 256 == 255:
                self.progress.advance(256)
        self.progress.advance(len(left) % 256)
        return scores


def _read_rows(path: Path, fields: tuple[str, ...], make: Callable[[dict], object]) -> list:
    """``make(row)`` for every JSONL row of ``path``; a bad row names its line and the fields expected."""
    out = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                out.append(make(json.loads(line)))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: expected {{{', '.join(fields)}}}: {exc}") from exc
    if not out:
        raise ValueError(f"{path} holds no rows")
    return out


def load_pairs(path: Path) -> list[LabelledPair]:
    """Read ``{"a", "b", "label"}`` rows from a JSONL file."""
    return _read_rows(
        path, ("a", "b", "label"), lambda r: LabelledPair(str(r["a"]), str(r["b"]), int(r["label"]))
    )


def score_pairs(pairs: list[LabelledPair], encoder: TextEncoder, floor: float) -> PairScores:
    """Cosine of each pair and the decision's score (``NOT_SERVED`` under the cosine pre-filter)."""
    encoder.add([t for p in pairs for t in (p.a, p.b)])
    left = np.stack([encoder.vectors[p.a] for p in pairs])
    right = np.stack([encoder.vectors[p.b] for p in pairs])
    cosine = np.einsum("ij,ij->i", left, right).astype(np.float64)
    scores = np.full(len(pairs), NOT_SERVED)
    keep = np.nonzero(cosine >= floor)[0]
    if len(keep):
        scores[keep] = encoder.score([pairs[i].b for i in keep], [pairs[i].a for i in keep], cosine[keep])
    return PairScores(np.array([p.label for p in pairs]), cosine, scores)


def tune(scores: PairScores, decision: str, budget: float, confidence: float = 0.95) -> TuneResult:
    """Fit the decision's threshold (and, for comparison, a cosine threshold) to ``budget``; refuses
    scores without enough pairs of each label (:func:`check_support`)."""
    check_support(pair_support(scores.labels.tolist()), budget, confidence)
    served = scores.decision > NOT_SERVED
    curve = sweep(np.where(served, scores.decision, NOT_SERVED), scores.labels, confidence)
    curve = [p for p in curve if p.threshold > NOT_SERVED]
    cosine_curve = sweep(scores.cosine, scores.labels, confidence)
    return TuneResult(
        decision=decision,
        budget=budget,
        confidence=confidence,
        pairs=len(scores.labels),
        positives=int(scores.labels.sum()),
        chosen=fit_threshold(curve, budget),
        cosine_chosen=fit_threshold(cosine_curve, budget),
        curves={decision: curve, "cosine": cosine_curve},
    )

    """Fit the decision's threshold (and, for comparison, a cosine threshold) to ``budget``; refuses
    scores without enough pairs of each label (:func:`check_support`)."""
    check_support(pair_support(scores.labels.tolist()), budget, confidence)


def load_stream(path: Path) -> list[tuple[str, str]]:
    """Read ``{"prompt", "cluster"}`` rows (a clustered prompt stream, in arrival order)."""
    return _read_rows(path, ("prompt", "cluster"), lambda r: (str(r["prompt"]), str(r["cluster"])))


def stream_lookups(
    rows: list[tuple[str, str]], encoder: TextEncoder, floor: float, top_n: int, cosine: bool = False
) -> StreamLookups:
    """Replay a stream through a cache, scoring with the decision (or with the cosine alone)."""
    texts = [prompt for prompt, _ in rows]
    encoder.add(texts)
    vectors = np.stack([encoder.vectors[t] for t in texts])
    _, clusters = np.unique([cluster for _, cluster in rows], return_inverse=True)

    def score(queries: np.ndarray, candidates: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        if cosine:
            return cosines.astype(np.float64)
        return encoder.score([texts[i] for i in queries], [texts[j] for j in candidates], cosines)

    return replay(vectors, clusters, score, top_n, 0.0 if cosine else floor)


def tune_stream(
    rows: list[tuple[str, str]],
    encoder: TextEncoder,
    decision: str,
    budget: float,
    floor: float,
    top_n: int,
    confidence: float = 0.95,
) -> TuneResult:
    """Fit the threshold by lookup: of the hits a cache replaying the stream serves, the wrong share's
    upper bound stays within ``budget``; ``recall`` is the right hits over the oracle's. Refuses a
    stream without enough prompts of each kind (:func:`check_support`)."""
    check_support(stream_support([cluster for _, cluster in rows]), budget, confidence)
    lookups = stream_lookups(rows, encoder, floor, top_n)
    curve = stream_sweep(lookups, confidence)
    cosine_curve = stream_sweep(stream_lookups(rows, encoder, floor, top_n, cosine=True), confidence)
    return TuneResult(
        decision=decision,
        budget=budget,
        confidence=confidence,
        pairs=len(rows),
        positives=int(lookups.oracle.sum()),
        chosen=fit_threshold(curve, budget),
        cosine_chosen=fit_threshold(cosine_curve, budget),
        curves={decision: curve, "cosine": cosine_curve},
    )


def report(result: TuneResult) -> dict:
    """The tuning outcome as JSON-ready data."""

    def point(p: Point | None) -> dict | None:
        return None if p is None else {k: getattr(p, k) for k in Point.__dataclass_fields__}

    return {
        "decision": result.decision,
        "budget": result.budget,
        "confidence": result.confidence,
        "pairs": result.pairs,
        "positives": result.positives,
        "chosen": point(result.chosen),
        "cosine_chosen": point(result.cosine_chosen),
        "summary": {name: summary(curve) for name, curve in result.curves.items()},
        "curves": {name: as_dicts(curve) for name, curve in result.curves.items()},
    }


def plot(result: TuneResult, path: Path) -> None:
    """Precision, recall and false-hit rate against the threshold, for cosine and the decision."""
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
        chosen = result.chosen if name == result.decision else result.cosine_chosen
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
