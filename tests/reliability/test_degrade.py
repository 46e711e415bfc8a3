"""Degrade, don't fail (issue 21, points 1 and 5): a store that cannot write keeps serving what it holds
and passes upstream answers through uncached; a purge is final even for a miss in flight."""

from __future__ import annotations

import threading

import httpx

from semcache.config import Settings
from semcache.http.app import create_app
from tests.servers import serve

REPO = {"X-Semcache-Repo": "acme"}


def ask(url: str, prompt: str, model: str = "rel-basic", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=REPO, timeout=30)


def test_a_full_store_serves_hits_and_passes_answers_through(settings: Settings, embedder) -> None:
    # SQLite's own page limit is a full disk as the store sees it: "database or disk is full".
    full = settings.model_copy(update={"max_store_mb": 0.25})
    with serve(create_app(full, embedder=embedder)) as url:
        first = ask(url, "question number 0 about the weather")
        assert first.headers["x-semcache"] == "miss"
        for i in range(1, 400):
            answer = ask(url, f"question number {i} about topic {i * 7919 % 1000} and more")
            assert (
                answer.status_code == 200 and "answer to" in answer.json()["choices"][0]["message"]["content"]
            )
            if httpx.get(f"{url}/healthz").json()["status"] == "degraded":
                break
        health = httpx.get(f"{url}/healthz").json()
        assert health["status"] == "degraded" and "full" in health["reason"]
        again = ask(url, "question number 0 about the weather")  # its hit cannot be counted: served anyway
        assert again.status_code == 200 and again.headers["x-semcache"] == "hit-exact"
        stream = ask(url, "a streamed question that cannot be stored", stream=True)
        assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
        assert "error" not in stream.text
        failures = [
            line
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith("semcache_store_write_failures ")
        ]
        assert float(failures[0].split()[1]) >= 1


def test_a_miss_in_flight_during_a_purge_is_not_stored(sidecar: str) -> None:
    ask(sidecar, "an entry that makes the repo exist")
    answered: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answered.append(ask(sidecar, "What is a monad?", "rel-slow-1200ms"))
    )
    slow.start()
    threading.Event().wait(0.5)  # the miss is at the upstream now
    assert httpx.delete(f"{sidecar}/v1/cache/repos/acme").json()["removed"] == 1
    slow.join()
    assert answered[0].status_code == 200 and answered[0].headers["x-semcache"] == "miss"
    assert httpx.get(f"{sidecar}/v1/cache/repos/acme/stats").json()["entries"] == 0
    assert ask(sidecar, "What is a monad?", "rel-slow-1200ms").headers["x-semcache"] == "miss"
