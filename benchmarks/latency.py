"""Hit latency over loopback HTTP, one client: exact hits and semantic hits against a warmed repo.

Starts the stub provider and a sidecar (``semcache serve``) as separate processes, warms one repo with
one side of GPTCache's paraphrase pairs (misses that go to the stub and are stored), then times exact
repeats and the paraphrases (semantic lookups) one request at a time.

    python benchmarks/latency.py --pairs 300 --out results/latency.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, machine, percentiles_ms, read_jsonl, stub_and_sidecar, write_json


def timed(client: httpx.Client, url: str, prompt: str) -> tuple[float, str]:
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt}]}
    start = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.headers["x-semcache"]


def run(pairs: list[dict], settings: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp, stub_and_sidecar(Path(tmp), **settings) as base:
        url = f"{base}/v1/chat/completions"
        with httpx.Client(headers={"X-Semcache-Repo": "bench"}, timeout=30) as client:
            warm = [timed(client, url, p["a"]) for p in pairs]
            exact = [timed(client, url, p["a"]) for p in pairs]
            semantic = [timed(client, url, p["b"]) for p in pairs]
    by_state: dict[str, list[float]] = {}
    for elapsed, state in warm + exact + semantic:
        by_state.setdefault(state, []).append(elapsed)
    return {"states": {s: percentiles_ms(v) for s, v in by_state.items()},
            "semantic_lookups": percentiles_ms([e for e, _ in semantic])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=300, help="paraphrase pairs to use")
    parser.add_argument("--data", type=Path, default=DATA_DIR / "gptcache_mock_pairs.jsonl")
    parser.add_argument("--verifier", default="cross-encoder", help="cross-encoder or cosine")
    parser.add_argument("--min-similarity", type=float, default=0.8, help="the cosine verifier's threshold")
    parser.add_argument("--budget", type=float, default=0.2, help="false-hit budget of the trained verifier")
    parser.add_argument("--out", type=Path, default=Path("results/latency.json"))
    args = parser.parse_args()
    settings = {"verifier": args.verifier, "min_similarity": str(args.min_similarity),
                "false_hit_budget": str(args.budget)}  # fmt: skip
    result = {"machine": machine(), "pairs": args.pairs, "settings": settings,
              **run(read_jsonl(args.data, args.pairs), settings)}  # fmt: skip
    title = f"1 client, loopback HTTP, verifier {args.verifier}"
    table = Table("outcome", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms", title=title)
    for state, stats in sorted(result["states"].items()):
        table.add_row(state, str(stats["n"]), *(f"{stats[k]:.2f}" for k in ("p50", "p95", "p99", "mean")))
    console = Console()
    console.print(table)
    console.print(f"machine: {result['machine']}")
    write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
