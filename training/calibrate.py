"""``python -m training.calibrate``: fit the shipped budget -> threshold table by lookup.

Replays the calibration stream (qqp_train components held out from training, see ``training.data``)
through a cache with the decision in ``--model`` (``semcache.decision.replay``), and for each budget picks
the loosest threshold whose 95 % Clopper-Pearson upper bound of the served wrong share stays within it.
The same for a plain cosine threshold, for comparison. Writes ``thresholds.json`` into the model folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semcache.config import DECISION_FLOOR
from semcache.decision.calibration import fit_threshold
from semcache.decision.learned import LearnedDecision
from semcache.decision.replay import StreamLookups, stream_sweep
from semcache.decision.tuning import TextEncoder, stream_lookups
from training.data import stream_of, training_set
from training.prepare import BANK
from training.states import StateBank

BUDGETS = (0.02, 0.05, 0.1, 0.2)


def calibration_stream(seed: int) -> list[tuple[str, str]]:
    """The held-out calibration stream as (prompt, cluster) rows, as ``semcache.decision.tuning`` reads them."""
    return [
        (r["prompt"], str(r["cluster"])) for r in stream_of(training_set(seed=seed).calibration, seed=seed)
    ]


def table(lookups: StreamLookups, budgets: tuple[float, ...]) -> tuple[dict, dict]:
    """(budget -> threshold, budget -> operating point) for the budgets some threshold certifies."""
    points = stream_sweep(lookups)
    thresholds, chosen = {}, {}
    for budget in budgets:
        point = fit_threshold(points, budget)
        if point is not None:
            thresholds[str(budget)] = point.threshold
            chosen[str(budget)] = {
                "threshold": point.threshold,
                "served": point.served,
                "wrong": point.wrong,
                "wrong_share": point.false_hit_rate,
                "upper": point.false_hit_upper,
                "of_oracle": point.recall,
                "oracle": int(lookups.oracle.sum()),
            }
    return thresholds, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="folder with head.npz")
    parser.add_argument("--bank", type=Path, default=BANK)
    parser.add_argument("--top-n", type=int, default=2)
    parser.add_argument("--floor", type=float, default=DECISION_FLOOR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    encoder = TextEncoder(StateBank.load(args.bank).encode_states, LearnedDecision(args.model))
    rows = calibration_stream(args.seed)
    out = {"tables": {}, "by_clusters": {}}
    for name, cosine in (("learned", False), ("cosine", True)):
        lookups = stream_lookups(rows, encoder, args.floor, args.top_n, cosine)
        out["tables"][name], out["by_clusters"][name] = table(lookups, BUDGETS)
        print(name, json.dumps(out["by_clusters"][name], indent=1))
    out["calibrated_on"] = {
        "stream": "qqp_train components held out from training (training.data.split_qqp), each question "
        "once, clusters joined by positive pairs",
        "prompts": len(rows),
        "seed": args.seed,
        "encoded": "int8 ONNX, one text per pass, as the sidecar embeds (training.prepare's bank)",
    }
    out.update(
        confidence=0.95,
        bound="by_clusters: the Clopper-Pearson upper bound of the served wrong share by the stream's clusters, "
        "by lookup; the tables follow audited.how where an audit was written",
        floor=args.floor,
        top_n=args.top_n,
        script="python -m training.calibrate",
    )
    (args.model / "thresholds.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
