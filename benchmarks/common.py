"""Helpers shared by the benchmarks: the machine description, starting servers, percentiles."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SEMCACHE_EVAL_DATA", ROOT.parent / "shared" / "data"))
T = TypeVar("T")


def machine() -> dict[str, object]:
    """What the benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(
    args: list[str], health_url: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[subprocess.Popen]:
    """Run a server process until the block exits; waits until ``health_url`` answers."""
    # Output goes to a file: a pipe nobody reads would fill up and block the server. The working
    # directory is this checkout, so `python -m semcache...` runs this checkout's code.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            args, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            _wait_healthy(proc, log, health_url, timeout_s)
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_healthy(proc: subprocess.Popen, log: IO[bytes], health_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{proc.args} exited: {log.read().decode()[-2000:]}")
        try:
            if httpx.get(health_url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args} did not start in {timeout_s} s")
        time.sleep(0.2)


@dataclass(frozen=True)
class Servers:
    """The running stub provider and sidecar: base URLs and process ids."""

    sidecar_url: str
    stub_url: str
    sidecar_pid: int
    stub_pid: int


@contextmanager
def stub_process() -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the stub provider; yields its base URL (without /v1) and process."""
    port = free_port()
    args = [sys.executable, str(ROOT / "scripts" / "stub_upstream.py"), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/_stub/calls") as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def stub() -> Iterator[str]:
    """Start the stub provider; yields its OpenAI base URL."""
    with stub_process() as (url, _):
        yield f"{url}/v1"


@contextmanager
def sidecar(data_dir: Path, upstream_url: str, **settings: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``semcache serve`` on ``data_dir`` against an upstream; yields its base URL and process."""
    port = free_port()
    env = {
        "HF_HUB_OFFLINE": "1",
        "SEMCACHE_UPSTREAM_BASE_URL": upstream_url,
        **{f"SEMCACHE_{k.upper()}": v for k, v in settings.items()},
    }
    args = [sys.executable, "-m", "semcache.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/healthz", env) as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def stub_and_sidecar(data_dir: Path, **settings: str) -> Iterator[Servers]:
    """Start the stub provider and a sidecar using it (``settings``: SEMCACHE_* values by field name)."""
    with (
        stub_process() as (stub_url, stub_proc),
        sidecar(data_dir, f"{stub_url}/v1", **settings) as (
            base,
            sidecar_proc,
        ),
    ):
        yield Servers(base, stub_url, sidecar_proc.pid, stub_proc.pid)


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds."""
    if not samples_s:
        return {"n": 0}
    ms = np.asarray(samples_s) * 1000
    return {
        "n": len(ms),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
    }


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """Rows of a JSONL file."""
    rows = []
    with path.open() as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def write_json(path: Path, payload: dict) -> None:
    """Write a result file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


class Ticker:
    """Progress of a long loop as a line on stderr at most every ``every_s`` seconds: steps done (of
    ``total``), elapsed time and, with a total, an estimate of the time left. Plain lines, so a run
    logged to a file shows them too. Also usable as :class:`semcache.decision.tuning.Progress`."""

    def __init__(self, what: str, total: float | None = None, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.begin(what, total)

    def begin(self, what: str, total: float | None) -> None:
        """Start counting a new phase."""
        self.what, self.total, self.done = what, total, 0.0
        self._start = self._last = time.monotonic()

    def advance(self, steps: float = 1) -> None:
        """Count ``steps`` more; print a line if the last one is ``every_s`` old."""
        self.done += steps
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(self.line(now - self._start), file=sys.stderr, flush=True)

    def line(self, elapsed: float) -> str:
        """The progress line after ``elapsed`` seconds."""
        text = f"{self.what}: {self.done:g}"
        if self.total:
            text += f"/{self.total:g} ({self.done / self.total:.0%})"
        text += f", {elapsed:.0f} s"
        if self.total and self.done:
            text += f", about {elapsed * (self.total - self.done) / self.done:.0f} s left"
        return text


def ticking(items: Iterable[T], what: str, total: int | None = None, every_s: float = 10.0) -> Iterator[T]:
    """``items``, printing progress (:class:`Ticker`) as the loop over them goes."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    ticker = Ticker(what, total, every_s)
    for item in items:
        yield item
        ticker.advance()
