"""Hit-decision sweep on labelled pair files, cosine against the learned decision: precision at recall
0.5, recall at precision 0.90 / 0.95 / 0.99 (false-hit rates of 10 / 5 / 1 %) and at 0.98, best F1, the
precision-at-cache-hit-ratio curve (P-CHR: each pair is one lookup, served when its score reaches the
threshold; a PNG), and the shipped operating point for a budget (traps served: negatives served).

    python -m benchmarks.sweep --limit 4000 --budget 0.05
    python -m benchmarks.sweep --pairs my_pairs.jsonl --limit 0
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, Ticker, machine, write_json
from benchmarks.evalkit import ADVERSARIAL, embedder, negatives_served, operating_point, sample_pairs
from semcache.config import DECISION_FLOOR
from semcache.decision import make_decision
from semcache.decision.calibration import recall_at_precision, summary, sweep
from semcache.decision.thresholds import pick_threshold
from semcache.decision.tuning import NOT_SERVED, TextEncoder, score_pairs

DEFAULT_PAIRS = [
    DATA_DIR / "qqp_dev.jsonl",
    *ADVERSARIAL,
    DATA_DIR / "mrpc_pairs.jsonl",
    DATA_DIR / "stsb_pairs.jsonl",
    DATA_DIR / "gptcache_mock_pairs.jsonl",
]
DECISIONS = ("cosine", "learned")


def curve_summary(values: np.ndarray, labels: np.ndarray, max_points: int = 300) -> tuple[dict, list]:
    """Summary figures and the P-CHR curve (hit ratio, precision) of one decision's scores."""
    curve = [p for p in sweep(values, labels, max_points=max_points) if p.threshold > NOT_SERVED]
    figures = summary(curve) | {"recall_at_p98": recall_at_precision(curve, 0.98)}
    pchr = [(p.served / len(labels), p.precision) for p in curve]
    return figures, pchr


def evaluate(
    path: Path, limit: int, budget: float, floor: float, encoder: TextEncoder, shipped: dict
) -> dict:
    """Both decisions on one pair file."""
    pairs = sample_pairs(path, limit)
    scores = score_pairs(pairs, encoder, floor)
    result = {"file": path.name, "pairs": len(pairs), "positives": int(scores.labels.sum())}
    for name, values in (("cosine", scores.cosine), ("learned", scores.decision)):
        figures, pchr = curve_summary(values, scores.labels)
        threshold = pick_threshold(shipped[name], budget)
        point = operating_point(values, scores.labels, threshold) if threshold is not None else None
        result[name] = {
            "summary": figures,
            "pchr": pchr,
            "calibrated": None
            if point is None
            else {
                "threshold": threshold,
                "served": point.served,
                "precision": point.precision,
                "recall": point.recall,
                "false_hit_rate": point.false_hit_rate,
                "negatives_served": negatives_served(scores, threshold, use_cosine=name == "cosine"),
            },
        }
    return result


def adversarial_total(results: list[dict]) -> dict:
    """Traps served and paraphrases hit over every adversarial set, at the shipped thresholds."""
    out = {}
    for name in DECISIONS:
        traps = served_traps = paraphrases = hits = 0
        for r in results:
            c = r[name]["calibrated"]
            if not r["file"].startswith("adversarial") or c is None:
                continue
            negatives = r["pairs"] - r["positives"]
            traps += negatives
            served_traps += round(c["negatives_served"] * negatives)
            paraphrases += r["positives"]
            hits += round(c["recall"] * r["positives"])
        out[name] = {"traps": traps, "traps_served": served_traps, "paraphrases": paraphrases, "hit": hits}
    return out


def traps_by_kind(files: list[Path], encoder: TextEncoder, floor: float, threshold: float | None) -> dict:
    """Adversarial pairs served at the shipped threshold, per kind of pair (negation, swapped roles, ...)."""
    from semcache.decision.tuning import LabelledPair

    rows = [json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()]
    if threshold is None or not rows:
        return {}
    pairs = [LabelledPair(r["a"], r["b"], int(r["label"])) for r in rows]
    scores = score_pairs(pairs, encoder, floor)
    out: dict[str, list[int]] = {}
    for row, score in zip(rows, scores.decision, strict=True):
        counts = out.setdefault(row.get("kind", "?"), [0, 0])
        counts[0] += 1
        counts[1] += int(score >= threshold)
    return {kind: {"pairs": n, "served": k} for kind, (n, k) in sorted(out.items())}


def print_table(results: list[dict], budget: float) -> None:
    table = Table(
        "pairs",
        "decision",
        "P@R0.5",
        "R@P0.90",
        "R@P0.95",
        "R@P0.98",
        "R@P0.99",
        "best F1",
        f"shipped @ budget {budget}: precision / recall / neg. served",
        title="hit decision sweep",
    )
    for result in results:
        for name in DECISIONS:
            s, c = result[name]["summary"], result[name]["calibrated"]
            cal = (
                "no threshold"
                if c is None
                else (f"{c['precision']:.3f} / {c['recall']:.3f} / {c['negatives_served']:.1%}")
            )
            table.add_row(
                f"{result['file']} ({result['pairs']})",
                name,
                f"{s['precision_at_r50']:.3f}",
                f"{s['recall_at_p90']:.3f}",
                f"{s['recall_at_p95']:.3f}",
                f"{s['recall_at_p98']:.3f}",
                f"{s['recall_at_p99']:.3f}",
                f"{s['best_f1']:.3f}",
                cal,
            )
    Console(width=190).print(table)


def plot_pchr(results: list[dict], path: Path) -> None:
    """Precision against cache-hit ratio, one panel per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if not r["file"].startswith("adversarial")]
    if not shown:  # the adversarial sets are summed up in the table, not drawn
        return
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
    for ax, result in zip(axes[0], shown, strict=True):
        for name in DECISIONS:
            xs, ys = zip(*result[name]["pchr"], strict=True) if result[name]["pchr"] else ((), ())
            ax.plot(xs, ys, label=name)
        ax.set_title(result["file"], fontsize=9)
        ax.set_xlabel("cache-hit ratio")
        ax.set_ylabel("precision")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=Path, nargs="+", default=DEFAULT_PAIRS, help="JSONL files of {a, b, label}"
    )
    parser.add_argument("--limit", type=int, default=4000, help="seeded sample per file (0 = all)")
    parser.add_argument("--budget", type=float, default=0.05, help="false-hit budget of the shipped point")
    parser.add_argument(
        "--floor", type=float, default=DECISION_FLOOR, help="cosine pre-filter of the decision"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="a decision model other than the shipped"
    )
    parser.add_argument("--out", type=Path, default=Path("results/sweep.json"))
    args = parser.parse_args()
    decision = make_decision("learned", args.model_dir)
    model = embedder()
    encoder = TextEncoder(model.encode_states, decision, progress=Ticker("sweep"))
    shipped = {"learned": decision.shipped_thresholds(), "cosine": _cosine_table(args.model_dir)}
    results = [evaluate(p, args.limit, args.budget, args.floor, encoder, shipped) for p in args.pairs]
    print_table(results, args.budget)
    totals = adversarial_total(results)
    Console().print(f"adversarial sets at budget {args.budget}: {totals}")
    kinds = traps_by_kind(
        [p for p in args.pairs if p.resolve() in ADVERSARIAL],
        encoder,
        args.floor,
        pick_threshold(shipped["learned"], args.budget),
    )
    Console().print(f"adversarial pairs served by kind (learned): {kinds}")
    Console().print(f"machine: {machine()}")
    payload = {
        "machine": machine(),
        "model": decision.model_id,
        "budget": args.budget,
        "floor": args.floor,
        "adversarial": totals,
        "adversarial_by_kind": kinds,
        "results": results,
    }
    write_json(args.out, payload)
    plot_pchr(results, args.out.with_suffix(".png"))
    Console().print(f"wrote {args.out} (+ .png where a set other than the adversarial ones was swept)")


def _cosine_table(model_dir: Path | None) -> dict[float, float]:
    """The cosine thresholds calibrated beside the model, for comparison."""
    from semcache.decision.learned import MODEL_DIR, load_shipped

    return load_shipped((model_dir or MODEL_DIR) / "thresholds.json", "cosine")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
