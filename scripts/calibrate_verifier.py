"""Fit the shipped false-hit-budget thresholds of the verifier (and of cosine, for comparison) on
Quora pairs the verifier was NOT trained on, and write them beside the model as thresholds.json.

The training sample is rebuilt from the seed and size recorded in provenance.json, and the held-out
rest of qqp_train.jsonl is used. A fresh install decides with these thresholds until an operator runs
``semcache tune`` on their own pairs.

    python scripts/calibrate_verifier.py --pairs 8000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import DATA_DIR  # noqa: E402
from benchmarks.evalkit import embedder, train_split  # noqa: E402
from semcache.config import VERIFY_FLOOR  # noqa: E402
from semcache.tuning import load_pairs, score_pairs, tune  # noqa: E402
from semcache.verifier import MODEL_DIR, CrossEncoderVerifier  # noqa: E402

BUDGETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]


def held_out(train_file: Path, provenance: dict, count: int, seed: int):
    """Up to ``count`` qqp_train pairs the model was not trained on, rebuilt from its provenance."""
    pairs = load_pairs(train_file)
    args = provenance["args"]
    limit, train_seed = int(args["limit"]), int(args["seed"])
    if "hold_out" in args:
        rest = [pairs[i] for i in train_split(len(pairs), limit, int(args["hold_out"]), train_seed)[1]]
    else:  # models trained before --hold-out: a seeded sample of ``limit`` pairs, the rest unused
        used = (
            set(random.Random(train_seed).sample(range(len(pairs)), limit))
            if limit
            else set(range(len(pairs)))
        )
        rest = [p for i, p in enumerate(pairs) if i not in used]
    if not rest:
        raise SystemExit(
            "the model was trained on every qqp_train pair: retrain with --hold-out to calibrate"
        )
    return random.Random(seed).sample(rest, min(count, len(rest)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="the evaluation data (SEMCACHE_EVAL_DATA)"
    )
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--pairs", type=int, default=8000, help="held-out pairs to calibrate on")
    parser.add_argument(
        "--floor", type=float, default=VERIFY_FLOOR, help="cosine pre-filter (settings.verify_min_similarity)"
    )
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    provenance = json.loads((args.model_dir / "provenance.json").read_text())
    pairs = held_out(args.data_dir / "qqp_train.jsonl", provenance, args.pairs, args.seed)
    model = embedder()
    tables: dict[str, dict[str, float]] = {"cross-encoder": {}, "cosine": {}}
    points: dict[str, dict[str, dict]] = {"cross-encoder": {}, "cosine": {}}
    scores = score_pairs(pairs, model.encode, CrossEncoderVerifier(args.model_dir), args.floor)
    for budget in BUDGETS:
        result = tune(scores, "cross-encoder", budget, args.confidence)
        for name, chosen in (("cross-encoder", result.chosen), ("cosine", result.cosine_chosen)):
            if chosen is not None:
                tables[name][str(budget)] = chosen.threshold
                points[name][str(budget)] = {"threshold": chosen.threshold, "precision": chosen.precision,
                                             "recall": chosen.recall, "served": chosen.served}  # fmt: skip
    out = {
        "tables": tables,
        "calibrated_on": {"file": "qqp_train.jsonl (pairs held out from training)", "pairs": len(pairs),
                          "positives": int(scores.labels.sum()), "seed": args.seed},
        "confidence": args.confidence, "bound": "Clopper-Pearson upper bound of the false-hit rate",
        "floor": args.floor, "points": points, "script": "scripts/calibrate_verifier.py",
    }  # fmt: skip
    (args.model_dir / "thresholds.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({"tables": tables, "points": points}, indent=2))


if __name__ == "__main__":
    main()
