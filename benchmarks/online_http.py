"""Online calibration on and off: a clustered prompt stream replayed through the sidecar over HTTP.

For each false-hit budget, two fresh sidecars on fresh data dirs, in front of the stub provider that
answers every prompt of a cluster with one text (``scripts/stub_upstream.py --clusters``):

- ``static``: ``SEMCACHE_AUDIT_RATE=0``, the shipped threshold for the budget all along;
- ``online``: the audit on (``--audit-rate``, judge ``exact``), so near misses and audited hits become
  labels and the repo's threshold moves under the budget as they arrive.

A served hit is right exactly when it reads "cluster <the prompt's cluster>". Per run: hits, wrong
share with its 95 % interval, right hits over the oracle's, audit calls per 1 000 requests and per 100
semantic hits (the stub's call count beyond the misses), hit latency p50, and the repo's threshold,
its source and its label count every ``--every`` prompts (drawn in a PNG). For the comparison at the
same wrong share, an offline replay of the same stream sweeps every static threshold of the decision
(``semcache.decision.replay.stream_sweep``) and reports the best one's right hits at the online run's
measured wrong share.

Streams: ``qqp`` (the shared qqp_dev_stream, Quora's clusters), ``paraphrase`` (the sentences of MRPC
and STS-B, positives joined into clusters) and ``mock`` (GPTCache's paraphrase pairs joined into
clusters: model-written rewordings, the shape of FAQ traffic), the last two shuffled with ``--seed`` and
built under results/. Clusters made from pairs are incomplete: duplicates never paired sit in different
clusters, so "wrong" over-counts.

    python -m benchmarks.online_http --stream qqp --limit 2000 --budgets 0.05
    python -m benchmarks.online_http --stream qqp --limit 0 --budgets 0.05 0.1
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.common import (
    DATA_DIR,
    ROOT,
    Ticker,
    machine,
    percentiles_ms,
    read_jsonl,
    sidecar,
    ticking,
    write_json,
)
from benchmarks.stream_http import cluster_stub, fraction, replay, score
from training.data import Components

STATS = "/v1/cache/repos/bench.stream/stats"


PAIR_STREAMS = {
    "paraphrase": ("mrpc_pairs.jsonl", "stsb_pairs.jsonl"),
    "mock": ("gptcache_mock_pairs.jsonl",),
}


def paraphrase_stream(path: Path, seed: int, files: tuple[str, ...] = PAIR_STREAMS["paraphrase"]) -> Path:
    """Write the texts of labelled pair files as a clustered stream (positive pairs joined), shuffled."""
    components = Components()
    for name in files:
        for row in read_jsonl(DATA_DIR / name):
            a, b = components.find(row["a"]), components.find(row["b"])  # every text, paired or not
            if row["label"] == 1:
                components.join(a, b)
    texts = sorted(components.parent)
    random.Random(seed).shuffle(texts)
    ids = {root: i for i, root in enumerate(sorted({components.find(t) for t in texts}))}
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'{{"prompt": {json.dumps(t)}, "cluster": {ids[components.find(t)]}}}' for t in texts]
    path.write_text("\n".join(lines) + "\n")
    return path


def trajectory_point(client: httpx.Client, base: str, done: int) -> dict[str, Any]:
    """Where the repo's threshold stands after ``done`` prompts."""
    decision = client.get(base + STATS).json()["decision"]
    return {
        "prompts": done,
        "threshold": decision["threshold"],
        "source": decision["source"],
        "labels": decision["labels"]["total"],
        "audits": decision["audit"]["audits"],
        "estimate": decision["labels"].get("false_hit_share"),
    }


def run_one(rows: list[dict], stub: str, settings: dict[str, str], args: argparse.Namespace) -> dict:
    """A fresh sidecar, the stream sent in chunks of ``--every``, the threshold read between chunks."""
    prompts = [row["prompt"] for row in rows]
    replies, seconds, points = [], 0.0, []
    with (
        tempfile.TemporaryDirectory(prefix="semcache-online-") as tmp,
        sidecar(Path(tmp), f"{stub}/v1", **settings, embedding_dir=str(args.model_dir)) as (base, _),
        httpx.Client(timeout=60) as client,
    ):
        calls_before = client.get(f"{stub}/_stub/calls").json()["total"]
        points.append(trajectory_point(client, base, 0))
        for start in ticking(
            range(0, len(prompts), args.every), f"{len(prompts)} prompts, chunks of {args.every}"
        ):
            chunk, took = replay(base, prompts[start : start + args.every], 1)
            replies += chunk
            seconds += took
            points.append(trajectory_point(client, base, len(replies)))
        time.sleep(1.0)  # let the last audit calls land before counting them
        upstream = client.get(f"{stub}/_stub/calls").json()["total"] - calls_before
        final = client.get(base + STATS).json()
    result = {"settings": settings, **score(rows, replies, seconds), "trajectory": points}
    misses = sum(r.state == "miss" for r in replies)
    extra = upstream - misses
    result["audit_calls"] = extra
    result["audit_calls_per_1000_requests"] = 1000 * extra / len(rows)
    result["audit_calls_per_100_semantic_hits"] = 100 * extra / max(result["semantic_hits"], 1)
    result["hit_latency_ms"] = percentiles_ms([r.seconds for r in replies if r.state == "hit-semantic"])
    result["miss_latency_ms"] = percentiles_ms([r.seconds for r in replies if r.state == "miss"])
    result["final_decision"] = final["decision"]
    result.pop("wrong")
    for point, start in zip(points[1:], range(0, len(rows), args.every), strict=True):
        point.update(chunk_counts(rows[start : start + args.every], replies[start : start + args.every]))
    return result


def chunk_counts(rows: list[dict], replies: list) -> dict[str, int]:
    """Hits and wrong hits among the prompts of one chunk (what the threshold of the time served)."""
    hits = [r for r in zip(rows, replies, strict=True) if r[1].state in ("hit-exact", "hit-semantic")]
    wrong = sum(reply.content != f"cluster {row['cluster']}" for row, reply in hits)
    return {"chunk_hits": len(hits), "chunk_wrong": wrong}


def best_static(rows: list[dict], wrong_share: float | None, budget: float) -> dict[str, Any]:
    """The static threshold serving the most right hits at a wrong share not above ``wrong_share``
    (offline replay of the same stream with the shipped decision)."""
    from semcache.decision import make_decision
    from semcache.decision.replay import stream_sweep
    from semcache.decision.tuning import TextEncoder, stream_lookups

    decision = make_decision("learned")
    encoder = TextEncoder(_embedder().encode_states, decision, progress=Ticker("best static threshold"))
    lookups = stream_lookups([(r["prompt"], str(r["cluster"])) for r in rows], encoder, 0.7, 2)
    points = stream_sweep(lookups, max_points=2000)
    limit = wrong_share if wrong_share is not None else budget
    within = [p for p in points if p.served and p.wrong / p.served <= limit + 1e-9]
    best = max(within, key=lambda p: p.served - p.wrong, default=None)
    oracle = int(lookups.oracle.sum())
    if best is None:
        return {"wrong_share_at_most": limit, "right_hits": 0, "oracle": oracle}
    return {
        "wrong_share_at_most": limit,
        "threshold": best.threshold,
        "served": best.served,
        "right_hits": best.served - best.wrong,
        "oracle": oracle,
    }


def _embedder() -> Any:
    from benchmarks.evalkit import embedder

    return embedder()


def plot(runs: dict[str, dict], path: Path) -> None:
    """The online runs' thresholds over the stream."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, run in runs.items():
        pts = run.get("trajectory", [])
        style = "-o" if "online" in name else ":"
        # no threshold holds the budget: a gap in the line (semantic hits off), not a line across it
        ax.plot(
            [p["prompts"] for p in pts],
            [math.nan if p["threshold"] is None else p["threshold"] for p in pts],
            style,
            markersize=3,
            label=name,
        )
    ax.set_xlabel("prompts replayed")
    ax.set_ylabel("threshold at the budget (combined score)")
    ax.set_title("the repo's threshold over the stream (gaps: no threshold holds the budget)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_table(console: Console, runs: dict[str, dict]) -> None:
    table = Table(
        "run",
        "hits (sem/exact)",
        "wrong share [95 % CI]",
        "right/oracle",
        "audits /1000 req",
        "audits /100 sem hits",
        "hit p50 ms",
        "final threshold (source, labels)",
        "best static, same wrong share: right/oracle",
    )
    for name, run in runs.items():
        low, high = run["wrong_interval"] or (0, 0)
        d = run["final_decision"]
        static = run.get("best_static") or {}
        static_text = (
            f"{static['right_hits'] / static['oracle']:.1%} ({static.get('threshold', '-')})"
            if static.get("oracle")
            else "-"
        )
        threshold = "off" if d["threshold"] is None else f"{d['threshold']:.3f}"
        table.add_row(
            name,
            f"{run['semantic_hits']}/{run['exact_hits']}",
            f"{fraction(run['wrong_share'])} [{low:.1%}, {high:.1%}]",
            fraction(run["right_over_oracle"]),
            f"{run['audit_calls_per_1000_requests']:.1f}",
            f"{run['audit_calls_per_100_semantic_hits']:.1f}",
            f"{run['hit_latency_ms'].get('p50', 0):.1f}",
            f"{threshold} ({d['source']}, {d['labels']['total']})",
            static_text,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stream", choices=["qqp", *PAIR_STREAMS], default="qqp")
    parser.add_argument("--limit", type=int, default=2000, help="first N prompts (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of the paraphrase stream")
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.02, 0.05, 0.1])
    parser.add_argument("--audit-rate", type=float, default=0.05)
    parser.add_argument("--every", type=int, default=500, help="prompts between threshold readings")
    parser.add_argument("--no-static", action="store_true", help="online runs only")
    parser.add_argument("--no-sweep", action="store_true", help="skip the offline best-static sweep")
    parser.add_argument(
        "--reuse", type=Path, help="runs already measured (a JSON this wrote): add the sweep and plot"
    )
    parser.add_argument("--model-dir", type=Path, default=ROOT / "results" / "model")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "online_http.json")
    args = parser.parse_args()
    path = DATA_DIR / "qqp_dev_stream.jsonl"
    if args.stream in PAIR_STREAMS:
        out = ROOT / "results" / f"{args.stream}_stream_{args.seed}.jsonl"
        path = paraphrase_stream(out, args.seed, PAIR_STREAMS[args.stream])
    rows = read_jsonl(path, args.limit or None)
    result: dict[str, Any] = {
        "machine": machine(),
        "stream": str(path),
        "prompts": len(rows),
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": {},
    }
    console = Console(width=max(Console().width, 170))
    runs = result["runs"]
    if args.reuse:  # runs measured before: only the sweep and the plot are added
        previous = json.loads(args.reuse.read_text())
        result["machine"] = previous["machine"]
        result["runs"] = runs = previous["runs"]
        args.budgets = []
    with cluster_stub(path) as stub_v1:
        stub = stub_v1.removesuffix("/v1")
        for budget in args.budgets:
            base = {"decision": "learned", "false_hit_budget": str(budget), "audit_judge": "exact"}
            modes = [("online", str(args.audit_rate))] + ([] if args.no_static else [("static", "0")])
            for mode, rate in modes:
                name = f"{mode} b={budget:g}"
                console.print(f"{name}: {len(rows)} prompts ...")
                runs[name] = run_one(rows, stub, {**base, "audit_rate": rate}, args)
                write_json(args.out, result)
    if not args.no_sweep:
        for name, run in runs.items():
            if name.startswith("online"):
                run["best_static"] = best_static(rows, run["wrong_share"], float(name.split("=")[1]))
    png = args.out.with_suffix(".png")
    plot(runs, png)
    write_json(args.out, result)
    print_table(console, runs)
    console.print(f"machine: {result['machine']}\nwrote {args.out} and {png}")


if __name__ == "__main__":
    main()
