"""How many of a stream replay's semantic hits are really wrong: the clusters' verdicts, checked by hand.

``benchmarks.stream_http`` judges a served answer by the clusters: right exactly when the answer stored
for an earlier prompt of the same cluster came back. Quora's clusters join only the pairs it labelled
duplicates, so they err both ways: two duplicates that were never paired sit in different clusters
(serving one for the other is right, the clusters call it wrong), and a broader and a narrower question
joined through a chain of pairs share one (serving one for the other can be wrong). This reads a
``stream_http`` result (its ``semantic`` rows: each hit's prompt and the stored prompt whose answer it
got) and an audit file of a reader's verdicts on a random sample of those hits, each side drawn on its
own, and gives the wrong share corrected both ways with its 95 % interval (as ``benchmarks.label_audit``
does for pairs; :func:`semcache.decision.calibration.two_sided`).

The audit file holds ``{"sha1", "clusters": "right" | "wrong", "verdict": "same" | "different"}`` per
hit: a sha1 of prompt + NUL + served prompt, no text, so it can live in this repository while the data
cannot. "same": the answer cached for the served prompt is right and complete for the prompt asked (a
served question that asks more is fine; an asked one that asks more, or a broader or narrower one whose
answer differs, is not). ``--show N`` prints N unaudited hits of each side,
drawn at random (seeded) and shuffled together without the clusters' verdict, to extend it blind.

    SEMCACHE_AUDIT_RATE=0 python -m benchmarks.stream_http --limit 0 --budgets 0.05 --cosine \\
        --out results/stream_http_t_audit.json
    python -m benchmarks.stream_audit results/stream_http_t_audit.json --show 50
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.common import ROOT, machine, write_json
from semcache.decision.calibration import two_sided
from training.data import pair_digest

AUDIT = ROOT / "benchmarks" / "data" / "qqp_dev_stream_audit.jsonl"
SIDES = ("wrong", "right")  # the clusters' verdict: another cluster's answer, or its own


def hit_key(hit: dict[str, Any]) -> str:
    """What names a served hit without its text: the prompt and the prompt whose answer it got."""
    return pair_digest(hit["prompt"], hit["served_prompt"]).hex()


def read_run(path: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The run ``name`` of a ``stream_http`` result (default: its first), which must list its hits."""
    runs = json.loads(path.read_text())["runs"]
    name = name or next(iter(runs))
    if name not in runs:
        raise SystemExit(f"{path} has no run {name!r}: it has {', '.join(runs)}")
    run = runs[name]
    if "semantic" not in run or any(hit["served_prompt"] is None for hit in run["semantic"]):
        raise SystemExit(f"{path}: run {name!r} does not list each hit's served prompt; rerun stream_http")
    return name, run


def read_audit(path: Path) -> dict[str, str]:
    """sha1 -> verdict; an unknown verdict is refused rather than counted."""
    if not path.exists():
        return {}
    audit = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        if row.get("verdict") not in ("same", "different"):
            raise SystemExit(f"{path}:{number}: verdict must be 'same' or 'different'")
        audit[row["sha1"]] = row["verdict"]
    return audit


def estimate(run: dict[str, Any], audit: dict[str, str]) -> dict[str, Any]:
    """The clusters' wrong share, the audited verdicts of each side and the share corrected both ways;
    right hits corrected the same way, over the clusters' oracle hits."""
    sides = [[h for h in run["semantic"] if h["right"] is (side == "right")] for side in SIDES]
    verdicts = tuple([audit[k] for k in map(hit_key, side) if k in audit] for side in sides)
    fixed = two_sided((len(sides[0]), len(sides[1])), verdicts)
    served = len(run["semantic"])
    right_hits = served * (1 - fixed["share"]) + run["exact_hits"] - run["wrong_exact_hits"]
    return {
        "semantic_hits": served,
        "by_clusters": {"wrong": len(sides[0]), "right": len(sides[1])},
        "wrong_share_by_clusters": len(sides[0]) / max(served, 1),
        "audited": dict(zip(SIDES, fixed["audited"], strict=True)),
        "really_wrong": dict(zip(SIDES, fixed["really_wrong"], strict=True)),
        "wrong_share_corrected": fixed["share"],
        "interval": fixed["interval"],
        "oracle_hits": run["oracle_hits"],
        "right_over_oracle_by_clusters": run["right_over_oracle"],
        "right_over_oracle_corrected": right_hits / max(run["oracle_hits"], 1),
    }


def print_table(name: str, result: dict[str, Any]) -> None:
    table = Table("measure", "value", title=f"stream audit: {name}")
    table.add_row("semantic hits", str(result["semantic_hits"]))
    for side in SIDES:
        table.add_row(f"the clusters call {side}", str(result["by_clusters"][side]))
        table.add_row(
            "  read by hand: really different",
            f"{result['really_wrong'][side]} of {result['audited'][side]}",
        )
    low, high = result["interval"]
    table.add_row("wrong share by the clusters", f"{result['wrong_share_by_clusters']:.1%}")
    if math.isnan(result["wrong_share_corrected"]):  # a side with hits has no verdict yet
        table.add_row("wrong share, corrected both ways", "not audited: extend it with --show")
    else:
        table.add_row(
            "wrong share, corrected both ways",
            f"{result['wrong_share_corrected']:.1%} (95 % CI {low:.1%}-{high:.1%})",
        )
        table.add_row(
            "right hits / the clusters' oracle hits",
            f"{result['right_over_oracle_by_clusters']:.1%} by the clusters, "
            f"{result['right_over_oracle_corrected']:.1%} corrected (of {result['oracle_hits']})",
        )
    Console(width=140).print(table)


def show_unaudited(run: dict[str, Any], audit: dict[str, str], count: int, seed: int) -> None:
    """``count`` unaudited hits of each side, drawn at random, shuffled together, without the clusters'
    verdict: the reader judges each blind."""
    rng = random.Random(seed)
    drawn = []
    for side in SIDES:
        fresh = [h for h in run["semantic"] if h["right"] is (side == "right") and hit_key(h) not in audit]
        drawn += [(side, h) for h in rng.sample(fresh, min(count, len(fresh)))]
    rng.shuffle(drawn)
    for side, hit in drawn:
        print(
            json.dumps(
                {"sha1": hit_key(hit), "clusters": side, "a": hit["prompt"], "b": hit["served_prompt"]}
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("result", type=Path, help="a benchmarks.stream_http JSON")
    parser.add_argument("--run", help="which of its runs (default: the first)")
    parser.add_argument("--audit", type=Path, default=AUDIT, help="JSONL of {sha1, clusters, verdict}")
    parser.add_argument("--show", type=int, default=0, help="print this many unaudited hits of each side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw --show makes")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "stream_audit.json")
    args = parser.parse_args()
    name, run = read_run(args.result, args.run)
    audit = read_audit(args.audit)
    if args.show:
        show_unaudited(run, audit, args.show, args.seed)
        return
    result = estimate(run, audit)
    print_table(name, result)
    write_json(args.out, {"result": str(args.result), "run": name, **result, "machine": machine()})
    print(f"machine: {machine()}\nwrote {args.out}")


if __name__ == "__main__":
    main()
