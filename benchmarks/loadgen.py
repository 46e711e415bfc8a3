"""The load generator behind ``benchmarks/latency.py``: closed-loop HTTP clients on one asyncio loop.

Each of ``clients`` workers sends a request, waits for the answer, and sends the next (no think
time), over its own keep-alive connection. Request bodies are serialized once, up front, so the
generator spends its CPU on HTTP only. While a run lasts, the CPU time of the generator itself and of
every named server process is taken from the kernel, so a report can say who used the cores.

The client is aiohttp's: the generator shares the cores with the servers it measures, so it must be
cheap. Against the stub provider at 32 clients, httpx's async client topped out at 368 requests/s and
spent 2.7 ms of CPU on each; aiohttp's answered 5 000/s at 0.18 ms each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benchmarks.common import percentiles_ms, ticking

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GENERATOR = "load generator"


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where the requests go and how to read an answer's outcome (e.g. ``hit-semantic``)."""

    url: str
    bodies: list[bytes]
    outcome: Callable[[Answer], str]
    headers: dict[str, str] = field(default_factory=dict)


def json_bodies(payloads: list[dict[str, Any]]) -> list[bytes]:
    """Request bodies, serialized once."""
    return [json.dumps(p).encode() for p in payloads]


@dataclass(frozen=True)
class Sample:
    """One request: which body, how long the answer took, what the answer said."""

    body: int
    latency_s: float
    outcome: str


@dataclass
class LoadRun:
    """What one run measured."""

    clients: int
    wall_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.samples)

    def latencies_s(self, outcome: str | None = None) -> list[float]:
        """Latencies of every request, or of those with one outcome."""
        return [s.latency_s for s in self.samples if outcome is None or s.outcome == outcome]

    def bodies(self, outcome: str) -> list[int]:
        """Indexes of the bodies whose answer had this outcome, in order."""
        return [s.body for s in self.samples if s.outcome == outcome]

    def summary(self) -> dict[str, Any]:
        """Throughput, latency percentiles, outcomes and each process's share of the machine's CPU."""
        cores = os.cpu_count() or 1
        return {
            "clients": self.clients,
            "requests": self.requests,
            "seconds": self.wall_s,
            "requests_per_s": self.requests / self.wall_s if self.wall_s else 0.0,
            "latency_ms": percentiles_ms(self.latencies_s()),
            "outcomes": dict(Counter(s.outcome for s in self.samples)),
            "latency_by_outcome": {
                o: percentiles_ms(self.latencies_s(o)) for o in {s.outcome for s in self.samples}
            },
            "cpu_s": self.cpu_s,
            "cpu_share": {name: s / (self.wall_s * cores) for name, s in self.cpu_s.items()},
            "cpu_ms_per_request": {name: 1000 * s / max(self.requests, 1) for name, s in self.cpu_s.items()},
        }


async def _worker(
    client: aiohttp.ClientSession,
    target: Target,
    order: itertools.count,
    stop: Callable[[], bool],
    run: LoadRun,
) -> None:
    while not stop():
        i = next(order) % len(target.bodies)
        start = time.perf_counter()
        try:
            elapsed_s, answer = await _timed_post(client, target, i)
        except aiohttp.ClientError as exc:  # a dropped connection is an outcome, not the end of the run
            run.samples.append(Sample(i, time.perf_counter() - start, type(exc).__name__))
            continue
        outcome = target.outcome(answer) if answer.status == 200 else str(answer.status)
        run.samples.append(Sample(i, elapsed_s, outcome))


def _session(clients: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"content-type": "application/json"}
    )


async def load(
    target: Target,
    clients: int,
    *,
    duration_s: float | None = None,
    max_requests: int | None = None,
    pids: dict[str, int] | None = None,
) -> LoadRun:
    """Run ``clients`` closed-loop workers until ``duration_s`` has passed or ``max_requests`` were sent."""
    if duration_s is None and max_requests is None:
        raise ValueError("give duration_s or max_requests")
    pids = pids or {}
    run = LoadRun(clients)
    order = itertools.count()
    async with _session(clients) as client:
        await _open_connections(client, target.url, clients)
        cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
        cpu_self = time.process_time()
        start = time.perf_counter()
        deadline = start + duration_s if duration_s is not None else float("inf")
        limit = max_requests if max_requests is not None else float("inf")
        issued = itertools.count(1)

        def stop() -> bool:
            return time.perf_counter() >= deadline or next(issued) > limit

        reporter = asyncio.create_task(_progress(run, start, duration_s))
        try:
            await asyncio.gather(*(_worker(client, target, order, stop, run) for _ in range(clients)))
        finally:
            reporter.cancel()
        run.wall_s = time.perf_counter() - start
        run.cpu_s = {GENERATOR: time.process_time() - cpu_self}
        run.cpu_s |= {name: process_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
    return run


async def _progress(run: LoadRun, start: float, duration_s: float | None, every_s: float = 10.0) -> None:
    """A line on stderr every ``every_s`` seconds while a load runs: requests so far, time left."""
    while True:
        await asyncio.sleep(every_s)
        elapsed = time.perf_counter() - start
        left = f", {max(duration_s - elapsed, 0):.0f} s left" if duration_s is not None else ""
        line = f"load, {run.clients} clients: {len(run.samples)} requests in {elapsed:.0f} s{left}"
        print(line, file=sys.stderr, flush=True)


async def _open_connections(client: aiohttp.ClientSession, url: str, clients: int) -> None:
    """Open every connection before the clock starts (a GET of ``/`` on each, all at once)."""
    root = str(URL(url).with_path("/"))

    async def touch() -> None:
        async with client.get(root) as response:
            await response.read()

    await asyncio.gather(*(touch() for _ in range(clients)))


async def paired(first: Target, second: Target, rounds: int) -> list[tuple[float, float, str]]:
    """One client, alternating: body i to ``first``, then body i to ``second``. Returns, per round,
    both latencies and the outcome of ``first``'s answer.

    Alternating keeps a noisy neighbour's load from landing on one side only."""
    rows = []
    async with _session(2) as client:
        for i in ticking(range(rounds), "paired rounds"):
            first_s, answer = await _timed_post(client, first, i)
            second_s, other = await _timed_post(client, second, i)
            for got in (answer, other):
                if got.status >= 400:
                    raise RuntimeError(f"HTTP {got.status}: {got.body[:200]!r}")
            rows.append((first_s, second_s, first.outcome(answer)))
    return rows


async def _timed_post(client: aiohttp.ClientSession, target: Target, i: int) -> tuple[float, Answer]:
    start = time.perf_counter()
    async with client.post(
        target.url, data=target.bodies[i % len(target.bodies)], headers=target.headers
    ) as r:
        body = await r.read()
    return time.perf_counter() - start, Answer(r.status, r.headers, body)
