"""Soak: N minutes of mixed traffic through a real sidecar, and what it left behind.

A fresh ``semcache serve`` in front of the stub provider. ``--clients`` threads send, at random: repeats
(exact hits), paraphrases (semantic hits), new prompts (misses), streamed requests, upstream faults
(the stub's 500 / 429 / timeout-like slow / broken-stream / tool-call models, never cached), bad bodies
(4xx), purges of one of five repos, lookups and stats. Reported: requests and errors by kind (an error is
a 5xx the request did not ask for, or a transport failure), p50 / p99 latency, the sidecar's RSS and
open files at start and end, and whether it answered /healthz "ok" at the end.

    python -m benchmarks.soak --minutes 1           # smoke
    python -m benchmarks.soak --minutes 10          # the figure docs/operations.md states
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.common import ROOT, machine, percentiles_ms, stub_and_sidecar, write_json

REPOS = [f"soak.{i}" for i in range(5)]
TOPICS = [
    "reverse a list in Python",
    "sort a dict by value",
    "read a CSV file with pandas",
    "center a div in CSS",
    "undo the last git commit",
    "make an HTTP request in Go",
]
FAULTS = ["m-500", "m-429", "m-slow-300ms", "m-broken-stream", "m-tool", "m-empty", "m-length"]


def process_state(pid: int) -> dict[str, int]:
    """Resident memory (kB) and open file descriptors of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_kb": rss, "open_files": len(os.listdir(f"/proc/{pid}/fd"))}


def one_request(http: httpx.Client, url: str, rng: random.Random) -> tuple[str, bool]:
    """Send one request of a random kind; returns (kind, whether it went wrong)."""
    repo = rng.choice(REPOS)
    headers = {"X-Semcache-Repo": repo}
    topic = rng.choice(TOPICS)
    kind = rng.choices(
        ["exact", "paraphrase", "new", "stream", "fault", "bad", "purge", "read"],
        weights=[30, 20, 15, 8, 10, 7, 2, 8],
    )[0]
    prompt = {
        "exact": f"How do I {topic}?",
        "paraphrase": f"What is the way to {topic}?",
        "new": f"How do I {topic} in step {rng.randrange(10**6)}?",
    }.get(kind, f"How do I {topic}?")
    body: dict[str, Any] = {"model": "m-basic", "messages": [{"role": "user", "content": prompt}]}
    if kind == "stream":
        body["stream"] = True
    if kind == "fault":
        body["model"] = rng.choice(FAULTS)
        body["stream"] = rng.random() < 0.5
    if kind == "bad":
        response = http.post(
            f"{url}/v1/chat/completions",
            content=rng.choice(
                [b"{", b'{"model": "m", "messages": []}', b'{"model": "m", "temperature": NaN}', b"[" * 500]
            ),
            headers=headers,
        )
        return kind, response.status_code >= 500
    if kind == "purge":
        return kind, http.delete(f"{url}/v1/cache/repos/{repo}", params={"wait": "false"}).status_code >= 500
    if kind == "read":
        path = rng.choice([f"/v1/cache/repos/{repo}/stats", "/v1/cache/repos", "/healthz", "/metrics"])
        return kind, http.get(f"{url}{path}").status_code >= 500
    response = http.post(f"{url}/v1/chat/completions", json=body, headers=headers)
    expected_5xx = kind == "fault" and any(f in body["model"] for f in ("500", "broken"))
    return kind, response.status_code >= 500 and not expected_5xx


def run(url: str, minutes: float, clients: int, seed: int) -> dict[str, Any]:
    """Send mixed traffic from ``clients`` threads for ``minutes``; counts, errors, latencies."""
    deadline = time.monotonic() + minutes * 60
    counts, errors, latencies, lock = Counter(), Counter(), [], threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    kind, wrong = one_request(http, url, rng)
                except httpx.HTTPError as exc:
                    kind, wrong = f"transport:{type(exc).__name__}", True
                with lock:
                    counts[kind] += 1
                    errors[kind] += wrong
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        threads[0].join(timeout=30)  # a progress line every 30 s meanwhile
        left = max(deadline - time.monotonic(), 0)
        with lock:
            sent, failed = sum(counts.values()), sum(errors.values())
        print(f"soak: {sent} requests, {failed} errors, {left:.0f} s left", file=sys.stderr, flush=True)
    for thread in threads:
        thread.join()
    return {
        "requests": dict(counts),
        "errors": {k: v for k, v in errors.items() if v},
        "latency_ms": percentiles_ms(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "results" / "model")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "soak.json")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="semcache-soak-") as tmp,
        stub_and_sidecar(
            Path(tmp), embedding_dir=str(args.model_dir), decision="cosine", min_similarity="0.85"
        ) as servers,
    ):
        start = process_state(servers.sidecar_pid)
        result = run(servers.sidecar_url, args.minutes, args.clients, args.seed)
        time.sleep(2.0)  # let background purges finish before reading the end state
        result |= {
            "start": start,
            "end": process_state(servers.sidecar_pid),
            "healthz": httpx.get(f"{servers.sidecar_url}/healthz").json()["status"],
        }
    result |= {"machine": machine(), "minutes": args.minutes, "clients": args.clients}
    write_json(args.out, result)
    table = Table(
        "requests", "errors", "p50 ms", "p99 ms", "RSS MB start → end", "open files start → end", "healthz"
    )
    table.add_row(
        str(sum(result["requests"].values())),
        str(sum(result["errors"].values())),
        f"{result['latency_ms']['p50']:.1f}",
        f"{result['latency_ms']['p99']:.1f}",
        f"{result['start']['rss_kb'] / 1024:.0f} → {result['end']['rss_kb'] / 1024:.0f}",
        f"{result['start']['open_files']} → {result['end']['open_files']}",
        result["healthz"],
    )
    console = Console()
    console.print(table)
    console.print(f"by kind: {result['requests']}\nerrors: {result['errors']}\nmachine: {result['machine']}")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
