"""GET /metrics: the event-loop lag monitor and the cache counters, on a real sidecar over loopback."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import chat, sidecar_settings
from tests.servers import serve

ROOT = Path(__file__).resolve().parent.parent


def metric_families(url: str) -> dict[str, str]:
    """Every family the sidecar serves (labelled ones with no series yet too), by name, with its type."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {family.name: family.type for family in text_string_to_metric_families(text)}


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


def test_repo_series_are_capped_and_upstream_failures_counted(
    tmp_path: Path, model_dir: Path, stub_url: str, embedder
) -> None:
    from semcache.http.app import create_app

    settings = sidecar_settings(tmp_path / "data", model_dir, stub_url, metrics_max_repos=2)
    with serve(create_app(settings, embedder=embedder)) as url:
        for repo in ("cap.a", "cap.b", "cap.c"):
            assert chat(url, f"What is stored in {repo}?", repo=repo, model="metrics-cap").status_code == 200
        assert chat(url, "What fails?", repo="cap.a", model="metrics-cap-500").status_code == 502
        samples = metric_samples(url)
    lookups = {
        dict(k)["repo"]: v for (name, k), v in samples.items() if name == "semcache_repo_lookups_total"
    }
    assert lookups == {"cap.a": 2.0, "cap.b": 1.0, "(other)": 1.0}
    entries = {dict(k)["repo"]: v for (name, k), v in samples.items() if name == "semcache_repo_entries"}
    assert entries == {"cap.a": 1.0, "cap.b": 1.0, "(other)": 1.0}
    thresholds = {dict(k)["repo"] for (name, k), _ in samples.items() if name == "semcache_repo_threshold"}
    assert thresholds == {"cap.a", "cap.b"}  # calibration series only for repos with series of their own
    assert samples[("semcache_requests_total", (("outcome", "error"), ("repo", "cap.a")))] == 1
    assert samples[("semcache_requests_total", (("outcome", "upstream"), ("repo", "cap.a")))] == 1
    errors = sum(v for (name, _), v in samples.items() if name == "semcache_upstream_errors_total")
    assert errors == 1
    assert samples[("semcache_upstream_seconds_count", (("mode", "complete"), ("outcome", "ok")))] == 3
    assert samples[("semcache_upstream_seconds_count", (("mode", "complete"), ("outcome", "error")))] == 1


def registry(path: Path, stub_url: str) -> Path:
    """A router whose every tier is one stub model of this module's own, with tiny budgets."""
    tiers = ("bulk", "standard", "structured", "complex")
    lines = [
        '[router]\ndefault_tier = "standard"',
        "[budgets]\nglobal_monthly_usd = 1e-9\nrepo_monthly_usd = 1e-9",
    ]
    for tier in tiers:
        lines.append(f'[tiers.{tier}]\nmodel = "mx-{tier}"')
        lines.append(
            f'[[models]]\nid = "mx-{tier}"\nbase_url = "{stub_url}/v1"\ntier = "{tier}"\n'
            "input_per_1m = 1.0\noutput_per_1m = 2.0\nmax_context_tokens = 32000\ntimeout_s = 5.0"
        )
    path.write_text("\n\n".join(lines))
    return path


def test_metrics_carry_savings_spend_breakers_and_budget_alerts_with_the_router(
    settings, embedder, stub_url: str, tmp_path: Path
) -> None:
    from semcache.http.app import create_app

    routed = settings.model_copy(update={"router_config": registry(tmp_path / "models.toml", stub_url)})
    with serve(create_app(routed, embedder=embedder)) as url:
        miss = chat(url, "What is the capital of Portugal?", repo="metrics.routed", model="mx-standard")
        hit = chat(url, "What is the capital of Portugal?", repo="metrics.routed", model="mx-standard")
        assert (miss.headers["x-semcache"], hit.headers["x-semcache"]) == ("miss", "hit-exact")
        samples = metric_samples(url)
        families = metric_families(url)
    docs = (ROOT / "docs" / "operations.md").read_text()
    for name, kind in families.items():  # every metric served is listed in the docs (but _created)
        if name.endswith("_created"):
            continue
        assert f"`{name}_total`" in docs if kind == "counter" else f"`{name}`" in docs, name
    dashboard = (ROOT / "docs" / "grafana-dashboard.json").read_text()
    for name in set(re.findall(r"\b(?:semcache|router)_[a-z_]+", dashboard)) - {"semcache_sidecar"}:
        family = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert family in families, f"the Grafana dashboard asks for {name}, which is not served"
    repo = ("repo", "metrics.routed")
    assert samples[("semcache_cost_saved_usd_total", (repo,))] == pytest.approx(
        float(hit.headers["x-semcache-saved-usd"])
    )
    assert samples[("semcache_tokens_saved_total", (repo,))] > 0
    assert samples[("semcache_requests_total", (("outcome", "hit"), repo))] == 1
    call = (("kind", "route"), ("model", "mx-standard"), ("outcome", "ok"), ("tier", "standard"))
    assert samples[("router_calls_total", call)] == 1
    spend = (("kind", "route"), ("model", "mx-standard"), repo, ("tier", "standard"))
    assert samples[("router_spend_usd_total", spend)] == pytest.approx(
        float(miss.headers["x-semcache-cost-usd"])
    )
    assert samples[("router_call_seconds_count", (("model", "mx-standard"), ("outcome", "ok")))] == 1
    assert samples[("router_budget_alerts_total", (repo,))] == 1
    assert samples[("router_budget_alerts_total", (("repo", "*"),))] == 1
    assert samples[("router_budget_usd", (("repo", "*"),))] == 1e-9
    assert samples[("router_month_spend_usd", (repo,))] > 0
    assert samples[("semcache_breaker_state", (("model", "mx-standard"),))] == 0
