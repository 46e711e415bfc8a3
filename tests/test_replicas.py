"""Several sidecar replicas on one PostgreSQL: what one learns, purges or tunes, the others see; and a
database outage mid-traffic makes misses, never errors or hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from pg_server import PgServer

from semcache.config import Settings
from semcache.store.postgres import PostgresStore
from tests.helpers import chat, sidecar_settings, upstream_calls
from tests.servers import serve, wait_for

PROMPT = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"


@pytest.fixture
def replicas(tmp_path: Path, model_dir: Path, stub_url: str, pg_url: str, embedder) -> Iterator[list[str]]:
    from semcache.http.app import create_app

    with ExitStack() as stack:
        urls = []
        for i in range(2):
            settings = sidecar_settings(tmp_path / f"replica{i}", model_dir, stub_url, store_url=pg_url)
            urls.append(stack.enter_context(serve(create_app(settings, embedder=embedder))))
        yield urls


def test_a_paraphrase_stored_through_one_replica_hits_on_the_other(
    replicas: list[str], stub_url: str
) -> None:
    one, two = replicas
    assert chat(one, PROMPT, model="rep-a").headers["x-semcache"] == "miss"
    hit = chat(two, PARAPHRASE, model="rep-a")
    assert hit.headers["x-semcache"] == "hit-semantic"
    assert upstream_calls(stub_url, "rep-a") == 1
    assert httpx.get(f"{two}/v1/cache/repos/acme/stats").json()["entries"] == 1


def test_a_purge_through_one_replica_is_in_force_on_the_other_at_its_next_lookup(replicas: list[str]) -> None:
    one, two = replicas
    chat(one, PROMPT, model="rep-b")
    assert chat(one, PARAPHRASE, model="rep-b").headers["x-semcache"] == "hit-semantic"
    assert httpx.delete(f"{two}/v1/cache/repos/acme").json()["removed"] == 1
    assert httpx.get(f"{one}/v1/cache/repos/acme/stats").json()["entries"] == 0
    assert chat(one, PARAPHRASE, model="rep-b").headers["x-semcache"] == "miss"


def test_a_threshold_tuned_through_one_store_reaches_every_replica(replicas: list[str], pg_url: str) -> None:
    _, two = replicas
    decision = httpx.get(f"{two}/v1/cache/repos/acme/stats").json()["decision"]
    assert decision["source"] != "tuned"
    tuner = PostgresStore(pg_url, 384)  # what `semcache tune` does from any machine
    tuner.save_threshold("acme", decision["model"], decision["false_hit_budget"], 0.99, 500)
    tuner.close()
    chat(two, PROMPT, model="rep-c")  # the next lookup notices the change
    report = httpx.get(f"{two}/v1/cache/repos/acme/stats").json()["decision"]
    assert report["source"] == "tuned" and report["threshold"] == 0.99


def test_the_database_stopped_mid_traffic_means_misses_then_hits_again(
    tmp_path: Path, model_dir: Path, stub_url: str, pg_server: PgServer, pg_url: str, embedder
) -> None:
    from semcache.http.app import create_app

    settings: Settings = sidecar_settings(tmp_path / "data", model_dir, stub_url, store_url=pg_url)
    with serve(create_app(settings, embedder=embedder)) as url:
        assert chat(url, PROMPT, model="rep-d").headers["x-semcache"] == "miss"
        assert chat(url, PROMPT, model="rep-d").headers["x-semcache"] == "hit-exact"
        pg_server.stop()
        try:
            for i in range(6):  # every request answered by the upstream, none an error, none hanging
                started = time.monotonic()
                response = chat(url, PROMPT, model="rep-d")
                assert response.status_code == 200, response.text
                assert response.headers["x-semcache"] == "miss"
                assert time.monotonic() - started < 5.0
                time.sleep(0.3 if i % 2 else 0.0)
            health = httpx.get(f"{url}/healthz", timeout=10).json()
            assert health["status"] == "degraded" and "lookups failed" in health["reason"]
            scraped = httpx.get(f"{url}/metrics", timeout=10)
            assert scraped.status_code == 200 and "semcache_store_available 0.0" in scraped.text
        finally:
            pg_server.start()
        wait_for(lambda: chat(url, PROMPT, model="rep-d").headers["x-semcache"] == "hit-exact", timeout_s=20)
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert "semcache_store_available 1.0" in httpx.get(f"{url}/metrics").text
    assert upstream_calls(stub_url, "rep-d") >= 7  # 1 before, 6 during, a few while reconnecting
