"""How much of a measured false-hit rate is label noise: the served "wrong" hits of a labelled pair file,
checked against a hand audit of a random sample of them.

The verifier decides at the shipped threshold for ``--budget``; the pairs it serves that the file labels
0 are the measured false hits. The audit file holds, for pairs of that file, a sha1 of ``a + NUL + b``
and a reader's verdict: "same" (one answer serves both: the label is wrong) or "different" (a real
false hit). It keeps no text, so it can live in this repository while the data cannot. The estimate is
the measured false-hit share times the audited share of real false hits, with its 95 % Clopper-Pearson
interval. ``--show N`` prints N served negatives the audit has not seen yet, to extend it.

    python -m benchmarks.label_audit
    python -m benchmarks.label_audit --budget 0.2 --show 20
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.stats import beta

from benchmarks.common import DATA_DIR, ROOT, machine, write_json
from benchmarks.evalkit import embedder, pair_sha1, sample_pairs
from semcache.calibration import clopper_pearson_upper
from semcache.thresholds import pick_threshold
from semcache.tuning import LabelledPair, score_pairs
from semcache.verifier import CrossEncoderVerifier

AUDIT = ROOT / "benchmarks" / "data" / "qqp_dev_audit.jsonl"


def pair_key(pair: LabelledPair) -> str:
    return pair_sha1(pair).hex()


def interval(hits: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of hits / total."""
    tail = (1 - confidence) / 2
    low = float(beta.ppf(tail, hits, total - hits + 1)) if hits else 0.0
    return low, clopper_pearson_upper(hits, total, 1 - tail)


def really_wrong(verdicts: list[str]) -> tuple[int, float, float, float]:
    """How many audit verdicts say "different" (a real false hit), their share of the verdicts (nan when
    there are none) and its 95 % interval."""
    real = sum(v == "different" for v in verdicts)
    low, high = interval(real, len(verdicts))
    return real, (real / len(verdicts) if verdicts else float("nan")), low, high


def served_pairs(pairs: list[LabelledPair], budget: float) -> tuple[float, np.ndarray]:
    """The shipped threshold for ``budget`` and which pairs the verifier serves at it."""
    verifier = CrossEncoderVerifier(threads=os.cpu_count() or 1)
    table = verifier.shipped_thresholds()
    threshold = pick_threshold(table, budget)
    if threshold is None:
        raise SystemExit(f"no shipped threshold certifies budget {budget}: try one of {sorted(table)}")
    scores = score_pairs(pairs, embedder().encode, verifier, floor=0.5)
    return threshold, scores.verifier >= threshold


def estimate(pairs: list[LabelledPair], served: np.ndarray, audit: dict[str, str]) -> dict:
    """The measured false-hit share, the audit's verdicts on served negatives, and the corrected share."""
    labels = np.array([p.label for p in pairs])
    wrong = [pair_key(p) for p, s in zip(pairs, served, strict=True) if s and p.label == 0]
    verdicts = [audit[key] for key in wrong if key in audit]
    real, share, low, high = really_wrong(verdicts)
    measured = len(wrong) / max(int(served.sum()), 1)
    return {
        "served": int(served.sum()), "served_positives": int((served & (labels == 1)).sum()),
        "served_negatives": len(wrong), "measured_false_hit_share": measured,
        "audited": len(verdicts), "audited_real_false_hits": real, "real_share_of_audited": share,
        "real_share_interval": [low, high], "corrected_false_hit_share": measured * share,
        "corrected_interval": [measured * low, measured * high],
    }  # fmt: skip


def print_table(result: dict, name: str, budget: float, threshold: float) -> None:
    table = Table(
        "measure", "value", title=f"label audit: {name}, budget {budget} (threshold {threshold:.3f})"
    )
    table.add_row("served hits", str(result["served"]))
    table.add_row(
        "labelled wrong (label 0)", f"{result['served_negatives']} ({result['measured_false_hit_share']:.1%})"
    )
    table.add_row("of those, audited", str(result["audited"]))
    low, high = result["real_share_interval"]
    table.add_row("audited: really different", f"{result['audited_real_false_hits']} "
                  f"({result['real_share_of_audited']:.0%}, 95 % CI {low:.0%}-{high:.0%})")  # fmt: skip
    low, high = result["corrected_interval"]
    table.add_row(
        "false-hit share, corrected",
        f"{result['corrected_false_hit_share']:.1%} (95 % CI {low:.1%}-{high:.1%})",
    )
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=Path, default=DATA_DIR / "qqp_dev.jsonl")
    parser.add_argument("--audit", type=Path, default=AUDIT, help="JSONL of {sha1, verdict}")
    parser.add_argument(
        "--budget", type=float, default=0.1, help="decide at the shipped threshold for this budget"
    )
    parser.add_argument("--show", type=int, default=0, help="print this many unaudited served negatives")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "label_audit.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with args.audit.open() as handle:
        audit = {row["sha1"]: row["verdict"] for row in map(json.loads, handle)}
    pairs = sample_pairs(args.pairs, 0)
    threshold, served = served_pairs(pairs, args.budget)
    result = estimate(pairs, served, audit)
    print_table(result, args.pairs.name, args.budget, threshold)
    fresh = [p for p, s in zip(pairs, served, strict=True) if s and p.label == 0 and pair_key(p) not in audit]
    for pair in fresh[: args.show]:
        print(f"{pair_key(pair)}\n  a: {pair.a}\n  b: {pair.b}")
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
