"""GET /metrics: the event-loop lag monitor and the cache counters, on a real sidecar over loopback."""

from __future__ import annotations

import gc

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_serve_loop_lag_and_cache_outcomes(sidecar: str) -> None:
    body = {"model": "m-metrics", "messages": [{"role": "user", "content": "How do I sort a dict by value?"}]}
    for _ in range(2):  # a miss, then an exact hit
        reply = httpx.post(f"{sidecar}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"})
        assert reply.status_code == 200
    samples = metric_samples(sidecar)
    names = {name for name, _ in samples}
    assert {
        "semcache_event_loop_lag_seconds_bucket",
        "semcache_event_loop_lag_seconds_count",
        "semcache_event_loop_lag_max_seconds",
        "semcache_lookups_total",
        "semcache_lookup_seconds_bucket",
    } <= names
    assert samples[("semcache_lookups_total", (("outcome", "miss"),))] == 1
    assert samples[("semcache_lookups_total", (("outcome", "hit-exact"),))] == 1
    assert samples[("semcache_lookup_seconds_count", (("outcome", "hit-exact"),))] == 1


def test_start_up_objects_are_out_of_the_collectors_reach(sidecar: str) -> None:
    # The models and libraries loaded at start-up: a full collection walking them stalled the loop.
    assert httpx.get(f"{sidecar}/healthz").status_code == 200
    assert gc.get_freeze_count() > 10_000
