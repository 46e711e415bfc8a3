"""A both-ways hand audit of the hits a replayed calibration stream serves, and the thresholds it supports.

The stream's clusters join only pairs Quora labelled duplicates, so they err both ways: two duplicates
never paired sit in different clusters ("wrong" hits that are right), and broader or narrower questions
joined transitively share one ("right" hits that are wrong). A reader's verdicts on random samples of
each side ("same": the answer cached for the served prompt is right and complete for the prompt asked;
"different") correct the wrong share at every threshold at or above the one the samples were drawn at.

    python -m training.audit --model results/head sample --wrong 100 --right 100 > to_read.txt
    python -m training.audit --model results/head fit   # after writing the verdicts file

Verdicts are kept by the sha1 of ``asked + NUL + served`` with no text (the data's terms).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from semcache.decision.calibration import two_sided
from semcache.decision.learned import LearnedDecision
from semcache.decision.replay import served
from semcache.decision.tuning import TextEncoder, stream_lookups
from training.calibrate import BUDGETS, calibration_stream
from training.data import pair_digest
from training.prepare import BANK
from training.states import ROOT, StateBank

VERDICTS = ROOT / "training" / "audit" / "calibration_verdicts.jsonl"


def key(asked: str, served: str) -> str:
    """The sha1 that names a served pair without its text."""
    return pair_digest(asked, served).hex()


def served_hits(model: Path, reference: float, top_n: int, floor: float, seed: int) -> list[dict]:
    """Every hit the stream serves at the ``reference`` threshold: asked, served, score, cluster-right."""
    encoder = TextEncoder(StateBank.load(BANK).encode_states, LearnedDecision(model))
    rows = calibration_stream(seed)
    lookups = stream_lookups(rows, encoder, floor, top_n)
    hit, right = served(lookups, reference)
    first = (lookups.scores >= reference).argmax(axis=1)
    texts = [prompt for prompt, _ in rows]
    return [
        {
            "asked": texts[i],
            "served": texts[lookups.candidates[i, first[i]]],
            "score": float(lookups.scores[i, first[i]]),
            "right": bool(right[i]),
        }
        for i in np.nonzero(hit)[0]
    ]


def load_verdicts(model: str, path: Path = VERDICTS) -> dict[str, str]:
    """sha1 -> "same" / "different", for the sample drawn from ``model``'s hits (a sample drawn from
    another model's hits is not a random sample of this one's)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["key"]: r["verdict"] for r in rows if r["model"] == model}


def known_verdicts(path: Path = VERDICTS) -> dict[str, str]:
    """Every verdict read so far, whatever sample it was drawn for (a pair's verdict does not change)."""
    if not path.exists():
        return {}
    return {r["key"]: r["verdict"] for r in map(json.loads, path.read_text().splitlines()) if r}


def corrected(hits: list[dict], verdicts: dict[str, str], threshold: float) -> dict:
    """The wrong share of the hits served at ``threshold`` by the clusters and corrected both ways."""
    kept = [h for h in hits if h["score"] >= threshold]
    sides = [[h for h in kept if h["right"] == side] for side in (False, True)]
    audited = tuple(
        [verdicts[key(h["asked"], h["served"])] for h in side if key(h["asked"], h["served"]) in verdicts]
        for side in sides
    )
    fixed = two_sided((len(sides[0]), len(sides[1])), audited)
    return {
        "threshold": threshold,
        "served": len(kept),
        "by_clusters": len(sides[0]) / max(len(kept), 1),
        "corrected": fixed["share"],
        "interval": fixed["interval"],
        "audited": fixed["audited"],
        "sides": [len(sides[0]), len(sides[1])],
        "really_wrong": fixed["really_wrong"],
    }


def print_sample(hits: list[dict], wrong: int, right: int, seed: int, model: str) -> None:
    """Random hits of each side as JSON lines for the reader to add a verdict to (those read before for
    another sample carry their verdict already)."""
    rng, known = random.Random(seed), known_verdicts()
    for side, count in ((False, wrong), (True, right)):
        pool = [h for h in hits if h["right"] == side]
        for h in rng.sample(pool, min(count, len(pool))):
            pair = key(h["asked"], h["served"])
            print(
                json.dumps(
                    {
                        "key": pair,
                        "model": model,
                        "side": "right" if side else "wrong",
                        "verdict": known.get(pair),
                        "asked": h["asked"],
                        "served": h["served"],
                    }
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--reference", type=float, default=0.66, help="the threshold samples are drawn at")
    parser.add_argument("--top-n", type=int, default=2)
    parser.add_argument("--floor", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="print random hits of each side to read")
    sample.add_argument("--wrong", type=int, default=100)
    sample.add_argument("--right", type=int, default=100)
    fitting = sub.add_parser("fit", help="each budget's threshold by the corrected wrong share")
    fitting.add_argument("--least", type=int, default=20, help="fewest verdicts per side a threshold needs")
    fitting.add_argument("--write", action="store_true", help="ship them in the model's thresholds.json")
    args = parser.parse_args()
    hits = served_hits(args.model, args.reference, args.top_n, args.floor, args.seed)
    if args.command == "sample":
        print_sample(hits, args.wrong, args.right, args.seed, LearnedDecision(args.model).model_id)
        return
    verdicts = load_verdicts(LearnedDecision(args.model).model_id)
    scores = sorted({round(h["score"], 4) for h in hits})
    table = [corrected(hits, verdicts, t) for t in scores[:: max(1, len(scores) // 200)]]
    chosen = fit(table, args.least)
    for budget, row in chosen.items():
        print(f"budget {budget}: {row}")
    if args.write:
        write(args.model, chosen, args.reference, len(verdicts))


def fit(table: list[dict], least: int) -> dict[str, dict]:
    """For each budget, walking from the strictest threshold down, the last one before the corrected
    wrong share first exceeds the budget (so a lucky dip further down is not picked), among thresholds
    that serve hits with at least ``least`` verdicts on each side of them, or all of them."""
    chosen = {}
    rows = sorted(table, key=lambda r: -r["threshold"])
    # A threshold that serves none of the stream's prompts certifies nothing.
    supported = [
        r
        for r in rows
        if r["served"] and all(a >= min(least, n) for a, n in zip(r["audited"], r["sides"], strict=True))
    ]
    for budget in BUDGETS:
        for row in supported:
            if not row["corrected"] <= budget:
                break
            chosen[str(budget)] = row
    return chosen


def write(model: Path, chosen: dict[str, dict], reference: float, verdicts: int) -> None:
    """Put the audited thresholds into the model's ``thresholds.json`` as the shipped learned table."""
    path = model / "thresholds.json"
    shipped = json.loads(path.read_text())
    shipped["tables"]["learned"] = {budget: row["threshold"] for budget, row in chosen.items()}
    shipped["audited"] = {
        "how": "the calibration stream's hits at the reference threshold, random samples of those the "
        "clusters call wrong and right read by hand (python -m training.audit); each budget's threshold is "
        "the loosest whose wrong share, corrected both ways, is within it (point estimate; the 95 % "
        "interval beside it)",
        "reference_threshold": reference,
        "verdicts": verdicts,
        "points": chosen,
    }
    path.write_text(json.dumps(shipped, indent=2) + "\n")


if __name__ == "__main__":
    main()
