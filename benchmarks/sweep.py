"""Threshold / verifier sweep on labelled pair files: precision, recall, false-hit rate and F1 per
threshold for cosine and for the trained verifier; recall at precision 0.90 / 0.95 / 0.99; precision at
recall 0.50; and the calibrated operating point (the shipped threshold for a false-hit budget).

    python -m benchmarks.sweep --limit 4000 --budget 0.02
    python -m benchmarks.sweep --pairs my_pairs.jsonl --limit 0
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, machine, write_json
from benchmarks.evalkit import embedder, negatives_served, operating_point, sample_pairs
from semcache.calibration import as_dicts, summary, sweep
from semcache.config import VERIFY_FLOOR
from semcache.thresholds import load_shipped, pick_threshold
from semcache.tuning import NOT_SERVED, score_pairs
from semcache.verifier import MODEL_DIR, CrossEncoderVerifier

DEFAULT_PAIRS = [
    DATA_DIR / "qqp_dev.jsonl",
    *sorted((ROOT / "benchmarks" / "data").glob("adversarial_*.jsonl")),
    DATA_DIR / "mrpc_pairs.jsonl",
    DATA_DIR / "stsb_pairs.jsonl",
    DATA_DIR / "gptcache_mock_pairs.jsonl",
]


def evaluate(path: Path, limit: int, budget: float, floor: float, model, verifier, shipped) -> dict:
    pairs = sample_pairs(path, limit)
    started = time.perf_counter()
    scores = score_pairs(pairs, model.encode, verifier, floor)
    seconds = time.perf_counter() - started
    result = {
        "file": path.name,
        "pairs": len(pairs),
        "positives": int(scores.labels.sum()),
        "seconds": seconds,
    }
    for name, values, table in (("cosine", scores.cosine, shipped["cosine"]),
                                ("cross-encoder", scores.verifier, shipped["cross-encoder"])):  # fmt: skip
        curve = [p for p in sweep(values, scores.labels) if p.threshold > NOT_SERVED]
        threshold = pick_threshold(table, budget)
        point = operating_point(values, scores.labels, threshold) if threshold is not None else None
        result[name] = {
            "summary": summary(curve),
            "calibrated": None if point is None else {
                "threshold": threshold, "served": point.served, "precision": point.precision,
                "recall": point.recall, "false_hit_rate": point.false_hit_rate,
                "negatives_served": negatives_served(scores, threshold, use_cosine=name == "cosine"),
            },
            "curve": as_dicts(curve),
        }  # fmt: skip
    return result


def print_table(results: list[dict], budget: float) -> None:
    table = Table("pairs", "decision", "P@R0.5", "R@P0.90", "R@P0.95", "R@P0.99", "best F1",
                  f"calibrated @ budget {budget}: precision / recall / neg. served",
                  title="hit decision sweep")  # fmt: skip
    for result in results:
        for name in ("cosine", "cross-encoder"):
            s, c = result[name]["summary"], result[name]["calibrated"]
            cal = "no threshold" if c is None else (
                f"{c['precision']:.3f} / {c['recall']:.3f} / {c['negatives_served']:.1%}")  # fmt: skip
            table.add_row(f"{result['file']} ({result['pairs']})", name, f"{s['precision_at_r50']:.3f}",
                          f"{s['recall_at_p90']:.3f}", f"{s['recall_at_p95']:.3f}", f"{s['recall_at_p99']:.3f}",
                          f"{s['best_f1']:.3f}", cal)  # fmt: skip
    Console(width=170).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=Path, nargs="+", default=DEFAULT_PAIRS, help="JSONL files of {a, b, label}"
    )
    parser.add_argument("--limit", type=int, default=4000, help="seeded sample per file (0 = all)")
    parser.add_argument("--budget", type=float, default=0.02, help="false-hit budget of the calibrated point")
    parser.add_argument(
        "--floor", type=float, default=VERIFY_FLOOR, help="cosine pre-filter before the verifier"
    )
    parser.add_argument("--verifier-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--embedding-precision", choices=["int8", "fp32"], default="int8")
    parser.add_argument("--out", type=Path, default=Path("results/sweep.json"))
    args = parser.parse_args()
    model = embedder(args.embedding_precision)
    verifier = CrossEncoderVerifier(args.verifier_dir, threads=os.cpu_count() or 1)
    thresholds = args.verifier_dir / "thresholds.json"
    shipped = {name: load_shipped(thresholds, name) for name in ("cosine", "cross-encoder")}
    results = [evaluate(p, args.limit, args.budget, args.floor, model, verifier, shipped) for p in args.pairs]
    print_table(results, args.budget)
    Console().print(f"machine: {machine()}")
    payload = {"machine": machine(), "budget": args.budget, "floor": args.floor,
               "embedding_precision": args.embedding_precision, "results": results}  # fmt: skip
    write_json(args.out, payload)
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
