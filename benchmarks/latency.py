"""Latency and throughput of the sidecar over loopback HTTP, per hit decision, and GPTCache's server.

For each decision of ``--decisions`` (default: ``learned`` then ``cosine``), in the same run on the same
machine, starts a fresh stub provider and sidecar (``semcache serve``) as processes and warms one repo
with one side (``a``) of GPTCache's paraphrase pairs (misses that go to the stub and are stored). The
other side (``b``) is asked once; the ``b`` answered ``hit-semantic`` are that decision's semantic-hit
queries of what follows:

1. one client: exact hits (the ``a`` again) and semantic hits, p50 / p95 / p99;
2. closed-loop load (``benchmarks/loadgen.py``): semantic hits at 8 / 32 / 64 concurrent clients for
   ``--duration`` seconds each (after ``--warmup`` seconds not counted): requests/s, p50 / p95 / p99, the
   CPU used by the load generator, the sidecar and the stub, and the sidecar's event-loop lag in that
   window (its ``semcache_event_loop_lag_seconds`` histogram from ``GET /metrics``, read before and after);
3. miss overhead: prompts the cache has not seen, one client, each sent to the sidecar (miss → stub →
   store) and the same body to the stub directly, alternating; p50 / p99 of both and the difference.

Then GPTCache (unless ``--no-gptcache``): its server (``benchmarks/gptcache_http.py``, in
``.venv-gptcache``) warmed with the same ``a``, asked the semantic-hit queries of every decision (their
union) at one client and under the same load, on its ``/get`` route (blocking its event loop, as GPTCache
ships it) and on ``/get_threaded`` (the same lookup in a worker thread). The report gives ratios taken
within the run (learned over cosine, each decision over GPTCache's better route) and the targets.

Client, sidecar, stub and GPTCache share the machine's cores. Quick run (about a minute):

    python -m benchmarks.latency --pairs 100 --single 100 --duration 2 --warmup 0.5 --misses 40 --no-gptcache
    python -m benchmarks.latency                                      # the full run, both decisions
    python -m benchmarks.latency --rounds 3         # learned, cosine, learned, ...: the ratio per round
    python -m benchmarks.latency --decisions cosine --min-similarity 0.85
    python -m benchmarks.latency --decisions learned --audit-rates 0.05 0 --no-gptcache
                                                      # what the audit costs a lookup: on, then off
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from benchmarks.common import (
    DATA_DIR,
    ROOT,
    Servers,
    free_port,
    machine,
    percentiles_ms,
    process,
    read_jsonl,
    stub_and_sidecar,
    write_json,
)
from benchmarks.latency_report import print_report
from benchmarks.loadgen import Answer, LoadRun, Target, json_bodies, load, paired
from semcache.decision import DECISIONS, make_decision
from semcache.decision.thresholds import pick_threshold
from semcache.embedding import packaged_model_path

GPTCACHE_VENV = ROOT / ".venv-gptcache"
GPTCACHE_HTTP = Path(__file__).resolve().parent / "gptcache_http.py"
REPO = {"X-Semcache-Repo": "bench"}


def chat_bodies(prompts: list[str]) -> list[bytes]:
    return json_bodies([{"model": "bench", "messages": [{"role": "user", "content": p}]} for p in prompts])


def semcache_outcome(answer: Answer) -> str:
    return answer.headers.get("x-semcache", "?")


def gptcache_outcome(answer: Answer) -> str:
    return "hit" if json.loads(answer.body).get("answer") else "miss"


def once(target: Target, requests: int, pids: dict[str, int] | None = None) -> LoadRun:
    """One client, ``requests`` requests through the target's bodies in order."""
    return asyncio.run(load(target, 1, max_requests=requests, pids=pids))


def loop_lag(base_url: str) -> dict[str, Any]:
    """The sidecar's event-loop lag histogram (cumulative bucket counts, sum, count) and its max gauge."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    out: dict[str, Any] = {"buckets": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "semcache_event_loop_lag_seconds_bucket":
                out["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name == "semcache_event_loop_lag_seconds_sum":
                out["sum"] = sample.value
            elif sample.name == "semcache_event_loop_lag_seconds_count":
                out["count"] = sample.value
            elif sample.name == "semcache_event_loop_lag_max_seconds":
                out["max_since_start_ms"] = sample.value * 1000
    return out


def lag_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Lag in the window between two readings: samples, mean, and bucket bounds for p99 and max."""
    count = after["count"] - before["count"]
    window = {le: after["buckets"][le] - before["buckets"].get(le, 0) for le in sorted(after["buckets"])}

    def bound(share: float) -> float:
        return next(le for le, n in window.items() if n >= share * count) * 1000

    return {
        "samples": int(count),
        "mean_ms": 1000 * (after["sum"] - before["sum"]) / max(count, 1),
        "p99_le_ms": bound(0.99) if count else None,
        "max_le_ms": bound(1.0) if count else None,
        "max_since_start_ms": after["max_since_start_ms"],
    }


def load_levels(
    target: Target, args: argparse.Namespace, pids: dict[str, int], lag_url: str | None = None
) -> list[dict[str, Any]]:
    """Closed-loop load at each client count: a warm-up that is not counted, then the measured run."""
    levels = []
    for clients in args.clients:
        asyncio.run(load(target, clients, duration_s=args.warmup))
        before = loop_lag(lag_url) if lag_url else None
        run = asyncio.run(load(target, clients, duration_s=args.duration, pids=pids))
        level = run.summary()
        if lag_url:
            level["loop_lag"] = lag_between(before, loop_lag(lag_url))
        levels.append(level)
    return levels


def decision_settings(name: str, args: argparse.Namespace) -> dict[str, str]:
    """The sidecar's settings for one decision: the cosine's threshold, or a learned one's budget."""
    if name == "cosine":
        return {"decision": name, "min_similarity": str(args.min_similarity)}
    settings = {"decision": name, "false_hit_budget": str(args.budget)}
    if args.decision_dir:
        settings["decision_dir"] = str(args.decision_dir)
    return settings


def check_decisions(args: argparse.Namespace) -> None:
    """Refuse, before any process starts, a decision that cannot serve a semantic hit at ``--budget``."""
    for name in args.decisions:
        if name == "cosine":
            continue
        try:
            decision = make_decision(name, args.decision_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"{exc}: pass --decisions cosine, or --decision-dir") from None
        threshold = pick_threshold(decision.shipped_thresholds(), args.budget)
        if threshold is None or not math.isfinite(threshold):
            raise SystemExit(
                f"the {name} decision ships no threshold certifying false_hit_budget "
                f"{args.budget} (thresholds.json): it would serve no semantic hit"
            )


def run_semcache(
    pairs: list[dict], fresh: list[str], settings: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Warm, then the one-client, load and miss-overhead measurements; returns them and the hit queries."""
    stored, queries = [p["a"] for p in pairs], [p["b"] for p in pairs]
    with tempfile.TemporaryDirectory() as tmp, stub_and_sidecar(Path(tmp), **settings) as servers:
        url = f"{servers.sidecar_url}/v1/chat/completions"
        pids = {"sidecar": servers.sidecar_pid, "stub": servers.stub_pid}
        warm = once(Target(url, chat_bodies(stored), semcache_outcome, REPO), len(stored))
        asked = once(Target(url, chat_bodies(queries), semcache_outcome, REPO), len(queries))
        hits = [queries[i] for i in dict.fromkeys(asked.bodies("hit-semantic"))]
        if not hits:
            raise SystemExit(
                f"no query was a semantic hit with {settings}: loosen --min-similarity or --budget"
            )
        semantic = Target(url, chat_bodies(hits), semcache_outcome, REPO)
        drained = audit_drained(servers.sidecar_url)
        kept = [stored[i] for i in warm.bodies("miss")]  # near-duplicate a's were hits, not stored
        exact = once(Target(url, chat_bodies(kept), semcache_outcome, REPO), args.single, pids)
        single = once(semantic, args.single, pids)
        levels = load_levels(semantic, args, pids, servers.sidecar_url)
        misses = miss_overhead(servers, fresh)
    return {
        "settings": settings,
        "warm": warm.summary(),
        "queries": asked.summary(),
        "hit_queries": hits,
        "audit_drain_s": drained,
        "exact": exact.summary(),
        "semantic": single.summary(),
        "load": levels,
        "misses": misses,
    }


def audit_drained(sidecar_url: str, quiet_s: float = 1.0, most_s: float = 120.0) -> float:
    """Wait until the audit has judged what the warm-up queued (its label count holds still for
    ``quiet_s``), so the measured lookups do not share the cores with that backlog; the seconds waited.
    With the audit off there is nothing to wait for."""
    started = time.monotonic()
    last, still_since = None, started
    while time.monotonic() - started < most_s:
        decision = httpx.get(f"{sidecar_url}/v1/cache/repos/{REPO['X-Semcache-Repo']}/stats").json()[
            "decision"
        ]
        if decision["audit"]["rate"] == 0:
            return 0.0
        total = decision["labels"]["total"]
        now = time.monotonic()
        if total != last:
            last, still_since = total, now
        elif now - still_since >= quiet_s:
            return round(still_since - started, 2)
        time.sleep(0.1)
    print(f"warning: the audit was still labelling after {most_s:.0f} s; measuring anyway", flush=True)
    return round(time.monotonic() - started, 2)


def miss_overhead(servers: Servers, prompts: list[str]) -> dict[str, Any]:
    """Each new prompt to the sidecar (a miss goes to the stub and is stored) and straight to the stub."""
    bodies = chat_bodies(prompts)
    sidecar = Target(f"{servers.sidecar_url}/v1/chat/completions", bodies, semcache_outcome, REPO)
    stub = Target(f"{servers.stub_url}/v1/chat/completions", bodies, semcache_outcome)
    rows = asyncio.run(paired(sidecar, stub, len(bodies)))
    kept = [(s, d) for s, d, outcome in rows if outcome == "miss"]  # a few new prompts are semantic hits
    via, direct = percentiles_ms([s for s, _ in kept]), percentiles_ms([d for _, d in kept])
    return {
        "asked": len(rows),
        "sidecar": via,
        "stub_direct": direct,
        "overhead_ms": {k: via[k] - direct[k] for k in ("p50", "p95", "p99", "mean")} if kept else {},
    }


@contextmanager
def gptcache_server(python: Path, stored: list[str], threshold: float) -> Iterator[tuple[str, int]]:
    """GPTCache's server in its venv, warmed with ``stored``; yields its base URL and process id."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gptcache-http-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(
            json.dumps(
                {
                    "model_dir": str(packaged_model_path()),
                    "work_dir": str(Path(tmp) / "work"),
                    "stored": stored,
                    "answers": [f"answer-{i}" for i in range(len(stored))],
                    "threshold": threshold,
                    "port": port,
                }
            )
        )
        # The venv's bin first on PATH: GPTCache shells out to `pip` when an extra is missing. One OpenMP
        # thread, as semcache's FAISS searches: spinning OpenMP threads cost more than one query gains.
        env = {
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        base = f"http://127.0.0.1:{port}"
        with process([str(python), str(GPTCACHE_HTTP), str(job)], f"{base}/", env, timeout_s=600) as proc:
            yield base, proc.pid


def run_gptcache(stored: list[str], hits: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """GPTCache's server asked the semantic-hit queries: one client on /get, then each route under load."""
    bodies = json_bodies([{"prompt": q} for q in hits])
    with gptcache_server(args.gptcache_python, stored, args.gptcache_threshold) as (base, pid):
        targets = {
            route: Target(f"{base}{route}", bodies, gptcache_outcome) for route in ("/get", "/get_threaded")
        }
        single = once(targets["/get"], args.single, {"gptcache": pid})
        levels = {route: load_levels(t, args, {"gptcache": pid}) for route, t in targets.items()}
    return {"threshold": args.gptcache_threshold, "single": single.summary(), "load": levels}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=int, default=300, help="pairs whose a warms the cache (b: the queries)"
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR / "gptcache_mock_pairs.jsonl")
    parser.add_argument(
        "--decisions",
        nargs="+",
        choices=sorted(DECISIONS),
        default=["learned", "cosine"],
        help="hit decisions to measure, each in its own fresh sidecar (default: %(default)s)",
    )
    parser.add_argument("--decision-dir", type=Path, help="another learned model (default: shipped)")
    parser.add_argument("--budget", type=float, default=0.05, help="the learned decision's false_hit_budget")
    parser.add_argument("--min-similarity", type=float, default=0.8, help="the cosine decision's threshold")
    parser.add_argument("--single", type=int, default=400, help="requests per one-client measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32, 64], help="concurrent clients")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per client count")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load not counted, before each")
    parser.add_argument("--misses", type=int, default=150, help="new prompts for the miss overhead")
    parser.add_argument("--no-gptcache", action="store_true", help="semcache only")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the decisions in turn this many times (learned, cosine, learned, ...); the learned / "
        "cosine ratio is then taken per round and its median checked against the target",
    )
    parser.add_argument(
        "--audit-rates",
        type=float,
        nargs="+",
        default=[0.05],
        help="SEMCACHE_AUDIT_RATE of each decision's sidecar; more than one runs each in turn, "
        "to compare lookups with the audit on and off (default: the setting's default)",
    )
    parser.add_argument(
        "--audit-judge",
        default="embedding",
        choices=["exact", "embedding"],
        help="the audit's judge (the default without a router: embedding)",
    )
    parser.add_argument(
        "--online-min-labels",
        type=int,
        default=200,
        help="labels before a repo's own threshold applies (default: the setting's). The embedding judge's "
        "labels move no threshold (SEMCACHE_ONLINE_JUDGES); with --audit-judge exact the stub's answers make "
        "every near miss a wrong label and the online fit turns semantic hits off within the warm-up: pass "
        "1000000 there to keep the shipped threshold",
    )
    parser.add_argument("--gptcache-python", type=Path, default=GPTCACHE_VENV / "bin" / "python")
    parser.add_argument(
        "--gptcache-threshold",
        type=float,
        default=0.8,
        help="GPTCache's similarity_threshold (0.8, its default: cos >= 0.6)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "latency.json")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.decisions = list(dict.fromkeys(args.decisions))
    return args


def run_order(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """(result key, decision, audit rate) of each sidecar run, in order: the decisions in turn, each at
    each audit rate, ``--rounds`` times over, so that drift in the machine's speed reaches every decision
    alike. The first round's runs carry the decision's name, later ones `` #2``, `` #3``..."""
    order = []
    for round_ in range(args.rounds):
        suffix = "" if round_ == 0 else f" #{round_ + 1}"
        for name in args.decisions:
            for i, rate in enumerate(args.audit_rates):  # the first rate's run carries the decision's name
                key = name if i == 0 else f"{name} audit={rate:g}"
                order.append((key + suffix, name, rate))
    return order


def main() -> None:
    args = parse_args()
    if not args.no_gptcache and not args.gptcache_python.exists():
        raise SystemExit(
            f"{args.gptcache_python} is missing: see benchmarks/GPTCACHE.md, or pass --no-gptcache"
        )
    check_decisions(args)
    rows = read_jsonl(args.data)
    pairs, fresh = rows[: args.pairs], [r["a"] for r in rows[args.pairs : args.pairs + args.misses]]
    result: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    result["semcache"] = {}
    for key, name, rate in run_order(args):
        settings = {
            **decision_settings(name, args),
            "audit_rate": str(rate),
            "audit_judge": args.audit_judge,
            "online_min_labels": str(args.online_min_labels),
        }
        result["semcache"][key] = run_semcache(pairs, fresh, settings, args)
        write_json(args.out, result)  # kept should a later side fail
    if not args.no_gptcache:
        hits = list(dict.fromkeys(q for run in result["semcache"].values() for q in run["hit_queries"]))
        result["gptcache"] = run_gptcache([p["a"] for p in pairs], hits, args)
    console = Console(width=max(Console().width, 150))
    result["ratios"], result["targets"] = print_report(console, result)
    write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
