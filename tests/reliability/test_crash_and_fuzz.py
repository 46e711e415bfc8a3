"""Crashes and random bodies (issue 21, the reliability suite): ``kill -9`` during concurrent writes
loses no acknowledged entry, and no body a client can send gets a 5xx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
REPO = {"X-Semcache-Repo": "acme"}


@contextmanager
def semcache_serve(data_dir: Path, model_dir: Path, stub_url: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``semcache serve`` process (so it can be killed), on ``data_dir``."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SEMCACHE_UPSTREAM_BASE_URL": f"{stub_url}/v1",
        "SEMCACHE_EMBEDDING_DIR": str(model_dir),
        "SEMCACHE_DECISION": "cosine",
        "SEMCACHE_AUDIT_RATE": "0",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "semcache.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "semcache serve did not start"
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def test_kill_9_during_concurrent_writes_loses_no_acknowledged_entry(
    tmp_path: Path, model_dir: Path, stub_url: str, embedder
) -> None:
    acknowledged: list[str] = []
    lock = threading.Lock()
    with semcache_serve(tmp_path / "data", model_dir, stub_url) as (url, proc):
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(timeout=10) as http:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    prompt = f"client {n} asks question {i} about item {i * 31 % 97}"
                    body = {"model": "rel-basic", "messages": [{"role": "user", "content": prompt}]}
                    try:
                        response = http.post(f"{url}/v1/chat/completions", json=body, headers=REPO)
                    except httpx.HTTPError:
                        return  # the server is gone: this one was never acknowledged
                    if response.status_code == 200 and response.headers["x-semcache"] == "miss":
                        with lock:
                            acknowledged.append(prompt)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert len(acknowledged) > 20
    with semcache_serve(tmp_path / "data", model_dir, stub_url) as (url, _):
        lookup = f"{url}/v1/cache/repos/acme/lookup"
        for prompt in acknowledged:
            body = {"model": "rel-basic", "messages": [{"role": "user", "content": prompt}]}
            found = httpx.post(lookup, json=body, timeout=10).json()
            assert found["hit"] and found["kind"] == "exact", prompt


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
CHATTY = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("m"), JSON),
        "messages": st.one_of(
            JSON,
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": JSON}
                ),
                max_size=3,
            ),
        ),
    },
    optional={"semcache": JSON, "stream": JSON, "temperature": JSON, "usage": JSON},
)
ROUTES = [
    "/v1/chat/completions",
    "/v1/cache/repos/acme/lookup",
    "/v1/cache/repos/acme/entries",
    "/v1/cache/repos/acme/feedback",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    body=st.one_of(JSON, CHATTY, st.builds(lambda r, a: {"request": r, "response": a}, CHATTY, JSON)),
)
def test_no_body_gets_a_server_error(sidecar: str, route: str, body: object) -> None:
    response = httpx.post(f"{sidecar}{route}", content=json.dumps(body), headers=REPO, timeout=30)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"type", "message"}
