"""Training and calibration data for the hit decision, made from the shared evaluation files.

- ``qqp_train`` is split by connected component (every pair, positive or negative, joins its two
  questions), so no question is both trained on and calibrated on: most components go to training, the
  rest become a *calibration stream* (each question once, ``cluster`` = its positive-joined class), which
  is replayed through a cache to fit thresholds by lookup.
- MRPC and STS-B: only the half that ``pair_half`` assigns to "train" (the benchmarks measure the other).
- Rule-made hard negatives (``training.perturb``) on training questions: the traps paraphrase corpora
  rarely show (negation, an opposite word, swapped roles, a changed number, identifier or language).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from training.perturb import easy_positive, hard_negative

DATA = Path(
    os.environ.get("SEMCACHE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data")
)


@dataclass(frozen=True)
class Pair:
    """Two prompts, and 1 when one cached answer serves both."""

    a: str
    b: str
    label: int


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file."""
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_pairs(path: Path) -> list[Pair]:
    """``{"a", "b", "label"}`` rows as pairs."""
    return [Pair(r["a"], r["b"], int(r["label"])) for r in read_jsonl(path)]


def pair_digest(a: str, b: str) -> bytes:
    """The sha1 of ``a + NUL + b``: what names a pair without its text (the train / eval halves, the
    hand audits' verdicts)."""
    return hashlib.sha1(f"{a}\x00{b}".encode()).digest()


def pair_half(pair: Pair) -> str:
    """ "train" or "eval", from :func:`pair_digest` (the split the benchmarks use too)."""
    return "train" if pair_digest(pair.a, pair.b)[0] % 2 == 0 else "eval"


def file_sha256(path: Path) -> str:
    """A data file's hash, for provenance."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Components:
    """Connected components of texts joined in pairs (union-find); ``parent`` holds every text seen."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        """The root of ``x``'s component (``x`` is added if new)."""
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        """Put ``a`` and ``b`` in one component."""
        self.parent[self.find(a)] = self.find(b)


def split_qqp(pairs: list[Pair], calibration_share: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, calibration pairs): whole components, ``calibration_share`` of them held out."""
    components = Components()
    for p in pairs:
        components.join(p.a, p.b)
    roots = sorted({components.find(p.a) for p in pairs})
    random.Random(seed).shuffle(roots)
    held = set(roots[: int(len(roots) * calibration_share)])
    train = [p for p in pairs if components.find(p.a) not in held]
    calibration = [p for p in pairs if components.find(p.a) in held]
    return train, calibration


def stream_of(pairs: list[Pair], seed: int) -> list[dict]:
    """A clustered prompt stream from labelled pairs: every text once, in a seeded order, ``cluster`` =
    the class its positive pairs join it to (so a served answer is right when the clusters match)."""
    classes = Components()
    texts: list[str] = []
    for p in pairs:
        for t in (p.a, p.b):
            if t not in classes.parent:
                texts.append(t)
            classes.find(t)
        if p.label:
            classes.join(p.a, p.b)
    ids: dict[str, int] = {}
    rows = [{"prompt": t, "cluster": ids.setdefault(classes.find(t), len(ids))} for t in texts]
    random.Random(seed).shuffle(rows)
    return rows


def augmented(pairs: list[Pair], share: float, seed: int) -> list[Pair]:
    """Rule-made pairs for ``share`` of the training pairs: a hard negative of one side against both
    sides (the paraphrase side is the harder trap), and an easy positive."""
    rng = random.Random(seed)
    out: list[Pair] = []
    for p in rng.sample(pairs, int(len(pairs) * share)):
        changed = hard_negative(p.a, rng)
        if changed:
            out.append(Pair(p.a, changed, 0))
            if p.label:
                out.append(Pair(p.b, changed, 0))
        out.append(Pair(p.b, easy_positive(p.b, rng), 1))
    return out


@dataclass(frozen=True)
class TrainingSet:
    """Everything one training run reads."""

    train: list[Pair]
    calibration: list[Pair]
    sources: dict[str, str]


def training_set(
    calibration_share: float = 0.2, augment_share: float = 0.3, seed: int = 0, repeat_others: int = 1
) -> TrainingSet:
    """qqp_train's training components, the train halves of MRPC and STS-B (``repeat_others`` times:
    they are a sixth of Quora's size), and rule-made pairs; the held-out qqp_train components for
    calibration."""
    files = ["qqp_train.jsonl", "mrpc_pairs.jsonl", "stsb_pairs.jsonl"]
    qqp_train, calibration = split_qqp(read_pairs(DATA / files[0]), calibration_share, seed)
    others = [p for name in files[1:] for p in read_pairs(DATA / name) if pair_half(p) == "train"]
    train = qqp_train + others * repeat_others + augmented(qqp_train, augment_share, seed)
    random.Random(seed).shuffle(train)
    return TrainingSet(train, calibration, {name: file_sha256(DATA / name) for name in files})
