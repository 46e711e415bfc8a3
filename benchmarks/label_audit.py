"""How much of a measured false-hit rate is label noise: the served hits of a labelled pair file, checked
against a hand audit of a random sample of them, both ways.

The learned decision decides at the shipped threshold for ``--budget``; the pairs it serves that the file labels
0 are the measured false hits. Labels err both ways: some pairs labelled 0 are paraphrases one answer
serves, and some labelled 1 are not (broader or narrower questions, a changed entity, an added question).
The audit file holds, for served pairs of that file, a sha1 of ``a + NUL + b``, the label and a reader's
verdict: "same" (one answer serves both) or "different" (it does not: for a label-0 pair, a real false
hit; for a label-1 pair, a false hit the labels hide). It keeps no text, so it can live in this
repository while the data cannot. The corrected share is (labelled wrong x their audited share of
"different" + labelled right x theirs) / served, with a 95 % interval (each side's 97.5 % Clopper-Pearson
interval, joined). ``--show N`` prints N served negatives the audit has not seen yet, and
``--show-positives N`` N served positives drawn at random, to extend it.

    python -m benchmarks.label_audit
    python -m benchmarks.label_audit --budget 0.2 --show 20 --show-positives 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, Ticker, machine, write_json
from benchmarks.evalkit import embedder, pair_sha1, sample_pairs
from semcache.config import DECISION_FLOOR
from semcache.decision import make_decision
from semcache.decision.calibration import two_sided
from semcache.decision.thresholds import pick_threshold
from semcache.decision.tuning import LabelledPair, TextEncoder, score_pairs

AUDIT = ROOT / "benchmarks" / "data" / "qqp_dev_audit.jsonl"


def pair_key(pair: LabelledPair) -> str:
    return pair_sha1(pair).hex()


def served_pairs(pairs: list[LabelledPair], budget: float) -> tuple[float, np.ndarray]:
    """The shipped threshold for ``budget`` and which pairs the learned decision serves at it."""
    decision = make_decision("learned")
    table = decision.shipped_thresholds()
    threshold = pick_threshold(table, budget)
    if threshold is None:
        raise SystemExit(f"no shipped threshold certifies budget {budget}: try one of {sorted(table)}")
    encoder = TextEncoder(embedder().encode_states, decision, progress=Ticker("label audit"))
    scores = score_pairs(pairs, encoder, floor=DECISION_FLOOR)
    return threshold, scores.decision >= threshold


def estimate(pairs: list[LabelledPair], served: np.ndarray, audit: dict[str, str]) -> dict:
    """The measured false-hit share, the audit's verdicts on served pairs of each label, and the share
    corrected both ways (see :func:`two_sided`)."""
    keys = [
        [pair_key(p) for p, s in zip(pairs, served, strict=True) if s and p.label == label]
        for label in (0, 1)
    ]
    verdicts = tuple([audit[key] for key in side if key in audit] for side in keys)
    fixed = two_sided((len(keys[0]), len(keys[1])), verdicts)
    return {
        "served": int(served.sum()),
        "served_positives": len(keys[1]),
        "served_negatives": len(keys[0]),
        "measured_false_hit_share": len(keys[0]) / max(int(served.sum()), 1),
        "audited_negatives": fixed["audited"][0],
        "negatives_really_wrong": fixed["really_wrong"][0],
        "audited_positives": fixed["audited"][1],
        "positives_really_wrong": fixed["really_wrong"][1],
        "corrected_false_hit_share": fixed["share"],
        "corrected_interval": fixed["interval"],
    }


def print_table(result: dict, name: str, budget: float, threshold: float) -> None:
    table = Table(
        "measure", "value", title=f"label audit: {name}, budget {budget} (threshold {threshold:.3f})"
    )
    table.add_row("served hits", str(result["served"]))
    table.add_row(
        "labelled wrong (label 0)", f"{result['served_negatives']} ({result['measured_false_hit_share']:.1%})"
    )
    table.add_row(
        "  audited: really different", f"{result['negatives_really_wrong']} of {result['audited_negatives']}"
    )
    table.add_row("labelled right (label 1)", str(result["served_positives"]))
    table.add_row(
        "  audited: really different", f"{result['positives_really_wrong']} of {result['audited_positives']}"
    )
    low, high = result["corrected_interval"]
    table.add_row(
        "false-hit share, corrected both ways",
        f"{result['corrected_false_hit_share']:.1%} (95 % CI {low:.1%}-{high:.1%})",
    )
    Console(width=140).print(table)


def show_unaudited(
    pairs: list[LabelledPair], served: np.ndarray, audit: dict[str, str], negatives: int, positives: int
) -> None:
    """Print served pairs the audit has not judged, to extend it: the first ``negatives`` labelled wrong
    and ``positives`` labelled right drawn at random (seeded)."""
    fresh = [
        [p for p, s in zip(pairs, served, strict=True) if s and p.label == label and pair_key(p) not in audit]
        for label in (0, 1)
    ]
    drawn = random.Random(0).sample(fresh[1], min(positives, len(fresh[1])))
    for pair in fresh[0][:negatives] + drawn:
        print(f"{pair_key(pair)} (label {pair.label})\n  a: {pair.a}\n  b: {pair.b}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=Path, default=DATA_DIR / "qqp_dev.jsonl")
    parser.add_argument("--audit", type=Path, default=AUDIT, help="JSONL of {sha1, verdict}")
    parser.add_argument(
        "--budget", type=float, default=0.05, help="decide at the shipped threshold for this budget"
    )
    parser.add_argument("--show", type=int, default=0, help="print this many unaudited served negatives")
    parser.add_argument(
        "--show-positives",
        type=int,
        default=0,
        help="print this many unaudited served positives, drawn at random",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "label_audit.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with args.audit.open() as handle:
        audit = {row["sha1"]: row["verdict"] for row in map(json.loads, handle)}
    pairs = sample_pairs(args.pairs, 0)
    threshold, served = served_pairs(pairs, args.budget)
    result = estimate(pairs, served, audit)
    print_table(result, args.pairs.name, args.budget, threshold)
    show_unaudited(pairs, served, audit, args.show, args.show_positives)
    payload = {
        "pairs": args.pairs.name,
        "budget": args.budget,
        "threshold": threshold,
        **result,
        "machine": machine(),
    }
    write_json(args.out, payload)
    print(f"machine: {machine()}\nwrote {args.out}")


if __name__ == "__main__":
    main()
