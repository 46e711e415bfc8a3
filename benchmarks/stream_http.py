"""Hits and wrong hits of a clustered prompt stream replayed through the real sidecar over HTTP.

Starts the stub provider with ``--clusters`` (its answer to a prompt of the stream is "cluster <id>",
the same for every prompt of a cluster) and, for each configuration, a fresh sidecar (``semcache serve``)
on a fresh data dir with the stub as upstream. The prompts are sent in stream order as a user would send
them (``POST /v1/chat/completions``, one repo), and each answer is judged by its content: a served hit
(``X-Semcache: hit-exact`` or ``hit-semantic``) is right exactly when it reads "cluster <the prompt's
cluster>", so a wrong hit is an answer stored for a prompt of another cluster.

Configurations: the learned decision at each ``--budgets`` false-hit budget, and the cosine decision at
each ``--cosine`` threshold. Per configuration: semantic and exact hits, wrong hits and their share of
the hits with its 95 % two-sided Clopper-Pearson interval, oracle hits (prompts whose cluster appeared
earlier in the stream: the most a perfect cache could serve right), right hits over oracle hits, and
requests/s (one client, loopback, stub and sidecar on the same machine).

The clusters join only the pairs Quora labelled duplicates (transitively), so "wrong" by the clusters is
not the truth: it over-counts (duplicates that were never paired sit in different clusters, and serving
one for the other is right) and under-counts (a broader and a narrower question joined through a chain
of pairs share a cluster, and serving one for the other can be wrong). Oracle hits are off the same way.

``qqp_dev_stream.jsonl`` is sorted by prompt text, so its first N prompts are an alphabetical slice (in
which the prompts of a cluster that start alike sit close together); ``--seed`` shuffles it first.
The embedding model's ONNX export is kept in ``--model-dir`` and shared by every run. Quick run:

    python -m benchmarks.stream_http --limit 300 --budgets 0.05 --cosine 0.9
    python -m benchmarks.stream_http                                  # 2000 prompts, 5 configurations
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.common import (
    DATA_DIR,
    ROOT,
    Ticker,
    free_port,
    machine,
    percentiles_ms,
    process,
    read_jsonl,
    sidecar,
    write_json,
)
from semcache.decision.calibration import interval

HEADERS = {"X-Semcache-Repo": "bench.stream"}
HITS = ("hit-exact", "hit-semantic")


@dataclass(frozen=True)
class Reply:
    """One prompt's outcome: what the cache did (``X-Semcache``), the content served, the latency."""

    state: str
    content: str
    seconds: float
    similarity: str | None = None
    entry_id: str | None = None  # the entry a miss stored, or the one a hit served
    score: str | None = None  # the decision's score of a hit


@contextmanager
def cluster_stub(clusters_file: Path) -> Iterator[str]:
    """Start the stub provider answering the prompts of ``clusters_file`` by cluster; yields its /v1 URL."""
    port = free_port()
    args = [sys.executable, str(ROOT / "scripts" / "stub_upstream.py"), "--port", str(port)]
    with process([*args, "--clusters", str(clusters_file)], f"http://127.0.0.1:{port}/_stub/calls"):
        yield f"http://127.0.0.1:{port}/v1"


def configurations(budgets: list[float], thresholds: list[float]) -> list[tuple[str, dict[str, str]]]:
    """(name, SEMCACHE_* settings) of each run: the learned decision per budget, cosine per threshold."""
    learned = [(f"learned b={b:g}", {"decision": "learned", "false_hit_budget": str(b)}) for b in budgets]
    cosine = [(f"cosine t={t:g}", {"decision": "cosine", "min_similarity": str(t)}) for t in thresholds]
    return learned + cosine


def ask(client: httpx.Client, url: str, prompt: str) -> Reply:
    """Send one prompt as a chat completion; the reply's cache state and content."""
    body = {"model": "stub", "messages": [{"role": "user", "content": prompt}]}
    start = time.perf_counter()
    response = client.post(url, json=body, headers=HEADERS)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        return Reply(f"http-{response.status_code}", response.text[:200], seconds)
    content = response.json()["choices"][0]["message"].get("content") or ""
    state = response.headers.get("x-semcache", "?")
    headers = response.headers
    return Reply(
        state,
        content,
        seconds,
        headers.get("x-semcache-similarity"),
        headers.get("x-semcache-entry-id"),
        headers.get("x-semcache-score"),
    )


def replay(base_url: str, prompts: list[str], concurrency: int) -> tuple[list[Reply], float]:
    """Send every prompt (in order when ``concurrency`` is 1); the replies in stream order and the seconds."""
    url = f"{base_url}/v1/chat/completions"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=120, limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        ticker = Ticker("prompts sent", len(prompts))

        def one(prompt: str) -> Reply:
            reply = ask(client, url, prompt)
            ticker.advance()  # from several threads: a progress line may count one short
            return reply

        start = time.perf_counter()
        replies = list(pool.map(one, prompts))
        return replies, time.perf_counter() - start


def oracle_flags(clusters: list[str]) -> list[bool]:
    """For each prompt, whether a prompt of its cluster came before it in the stream."""
    seen: set[str] = set()
    flags = []
    for cluster in clusters:
        flags.append(cluster in seen)
        seen.add(cluster)
    return flags


def score(rows: list[dict], replies: list[Reply], seconds: float) -> dict[str, Any]:
    """Hits, wrong hits and their share with its 95 % interval, oracle hits and recall, requests/s."""
    clusters = [str(row["cluster"]) for row in rows]
    oracle = oracle_flags(clusters)
    states = [reply.state for reply in replies]
    hit = [state in HITS for state in states]
    right = [reply.content == f"cluster {cluster}" for reply, cluster in zip(replies, clusters, strict=True)]
    wrong = [h and not r for h, r in zip(hit, right, strict=True)]
    hits, n_wrong = sum(hit), sum(wrong)
    right_hits = hits - n_wrong
    return {
        "prompts": len(rows),
        "states": {state: states.count(state) for state in sorted(set(states))},
        "semantic_hits": states.count("hit-semantic"),
        "exact_hits": states.count("hit-exact"),
        "hits": hits,
        "wrong_hits": n_wrong,
        "wrong_exact_hits": sum(w and s == "hit-exact" for w, s in zip(wrong, states, strict=True)),
        "wrong_share": n_wrong / hits if hits else None,
        "wrong_interval": list(interval(n_wrong, hits)) if hits else None,
        "oracle_hits": sum(oracle),
        "right_hits": right_hits,
        "right_over_oracle": right_hits / sum(oracle) if any(oracle) else None,
        "misses_not_own_answer": sum(not h and not r for h, r in zip(hit, right, strict=True)),
        "seconds": seconds,
        "requests_per_s": len(rows) / seconds if seconds else None,
        "latency_ms": percentiles_ms([reply.seconds for reply in replies]),
        "wrong": [wrong_row(row, reply) for row, reply, w in zip(rows, replies, wrong, strict=True) if w],
        "semantic": semantic_rows(rows, replies, right),
    }


def semantic_rows(rows: list[dict], replies: list[Reply], right: list[bool]) -> list[dict[str, Any]]:
    """Every semantic hit with the prompt whose stored answer it served (by the entry id the sidecar
    returned when that prompt missed), for a hand audit of the clusters' verdicts
    (``benchmarks.stream_audit``). ``right``: whether each reply was its own cluster's answer."""
    stored = {
        reply.entry_id: row
        for row, reply in zip(rows, replies, strict=True)
        if reply.state == "miss" and reply.entry_id is not None
    }
    out = []
    for row, reply, own in zip(rows, replies, right, strict=True):
        if reply.state != "hit-semantic":
            continue
        served = stored.get(reply.entry_id, {})
        out.append(
            {
                "prompt": row["prompt"],
                "cluster": row["cluster"],
                "served_prompt": served.get("prompt"),
                "served_cluster": served.get("cluster"),
                "right": own,
                "similarity": reply.similarity,
                "score": reply.score,
            }
        )
    return out


def wrong_row(row: dict, reply: Reply) -> dict[str, Any]:
    """A wrong hit for the JSON: the prompt, its cluster, what was served and at what cosine."""
    return {
        "prompt": row["prompt"],
        "cluster": row["cluster"],
        "state": reply.state,
        "served": reply.content,
        "similarity": reply.similarity,
    }


def run_one(rows: list[dict], stub_url: str, settings: dict[str, str], args: argparse.Namespace) -> dict:
    """One fresh sidecar on a fresh data dir, the whole stream through it, scored."""
    settings = {**settings, "embedding_dir": str(args.model_dir)}
    if args.decision_dir and settings["decision"] == "learned":
        settings["decision_dir"] = str(args.decision_dir)
    with (
        tempfile.TemporaryDirectory(prefix="semcache-stream-") as tmp,
        sidecar(Path(tmp), stub_url, **settings) as (base, _),
    ):
        replies, seconds = replay(base, [row["prompt"] for row in rows], args.concurrency)
    return {"settings": settings, **score(rows, replies, seconds)}


def fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def error_line(text: str) -> str:
    """The line of a failed start that says why (the last one naming an exception), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    named = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (named or lines or ["?"])[-1][:160]


def print_table(console: Console, runs: dict[str, dict]) -> None:
    """One row per configuration."""
    table = Table(
        "config",
        "prompts",
        "semantic",
        "exact",
        "wrong",
        "wrong share [95 % CI]",
        "oracle",
        "right/oracle",
        "req/s",
        title="clustered stream through the sidecar over HTTP",
    )
    for name, run in runs.items():
        if "error" in run:
            table.add_row(name, "failed: " + error_line(run["error"]))
            continue
        low_high = run["wrong_interval"]
        ci = f" [{low_high[0]:.1%}, {low_high[1]:.1%}]" if low_high else ""
        table.add_row(
            name,
            str(run["prompts"]),
            str(run["semantic_hits"]),
            str(run["exact_hits"]),
            str(run["wrong_hits"]),
            fraction(run["wrong_share"]) + ci,
            str(run["oracle_hits"]),
            fraction(run["right_over_oracle"]),
            f"{run['requests_per_s']:.1f}",
        )
    console.print(table)


def load_stream(args: argparse.Namespace) -> list[dict]:
    """The stream's rows in arrival order (shuffled with ``--seed`` when given), the first ``--limit``."""
    rows = read_jsonl(args.stream, None if args.seed is not None else args.limit or None)
    if args.seed is not None:
        random.Random(args.seed).shuffle(rows)
    return rows[: args.limit] if args.limit else rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stream",
        type=Path,
        default=DATA_DIR / "qqp_dev_stream.jsonl",
        help="JSONL of {prompt, cluster} in arrival order",
    )
    parser.add_argument("--limit", type=int, default=2000, help="first N prompts (0: all)")
    parser.add_argument(
        "--seed", type=int, help="shuffle the stream with this seed first (default: file order)"
    )
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="*",
        default=[0.02, 0.05, 0.1],
        help="false-hit budgets of the learned decision",
    )
    parser.add_argument(
        "--cosine", type=float, nargs="*", default=[0.9, 0.95], help="thresholds of the cosine decision"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="clients sending at once (1: strictly in stream order)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=ROOT / "results" / "model",
        help="the embedding model's ONNX export, shared by every run (exported once)",
    )
    parser.add_argument(
        "--decision-dir",
        type=Path,
        help="a trained, calibrated decision model for the learned runs (default: shipped)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "stream_http.json")
    args = parser.parse_args()
    rows = load_stream(args)
    result: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    result["runs"] = runs = {}
    console = Console(width=max(Console().width, 150))
    with cluster_stub(args.stream) as stub_url:
        for name, settings in configurations(args.budgets, args.cosine):
            console.print(f"{name}: {len(rows)} prompts ...")
            try:
                runs[name] = run_one(rows, stub_url, settings, args)
            except RuntimeError as error:  # the sidecar did not start: keep the other configurations
                runs[name] = {"settings": settings, "error": str(error)}
                console.print(f"[red]{name} failed:[/red] {str(error)[-600:]}")
            write_json(args.out, result)  # kept should a later run fail
    print_table(console, runs)
    console.print(f"machine: {result['machine']}")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
