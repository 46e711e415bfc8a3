"""The sidecar with the tiered router as its miss path, against the stub provider over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semcache.config import Settings
from tests.helpers import stream_events, streamed_text, upstream_calls
from tests.servers import serve, wait_for


def registry(path: Path, stub_url: str) -> Path:
    def model(model_id: str, tier: str, fallback: str | None = None, price: float = 1.0) -> str:
        lines = [
            f'[[models]]\nid = "{model_id}"\nbase_url = "{stub_url}/v1"\ntier = "{tier}"',
            f"input_per_1m = {price}\noutput_per_1m = {2 * price}\ncached_input_per_1m = 0.1",
            "max_context_tokens = 32000\ntimeout_s = 5.0",
        ]
        if fallback:
            lines.append(f'fallback = "{fallback}"')
        return "\n".join(lines)

    path.write_text(
        "\n\n".join(
            [
                '[router]\ndefault_tier = "standard"\nmin_confidence = 0.3',
                "[retry]\nmax_attempts = 1\nbackoff_initial_s = 0.01\nbackoff_max_s = 0.02\njitter_s = 0.0",
                '[tiers.bulk]\nmodel = "r-bulk"',
                '[tiers.standard]\nmodel = "r-standard-500"',
                '[tiers.structured]\nmodel = "r-structured"',
                '[tiers.complex]\nmodel = "r-complex"',
                model("r-bulk", "bulk", price=0.1),
                model("r-standard-500", "standard", fallback="r-standard-backup"),
                model("r-standard-backup", "standard"),
                model("r-structured", "structured"),
                model("r-complex", "complex", price=10.0),
            ]
        )
    )
    return path


@pytest.fixture
def routed(settings: Settings, embedder, stub_url: str, tmp_path: Path) -> Iterator[str]:
    from semcache.http.app import create_app

    routed_settings = settings.model_copy(
        update={"router_config": registry(tmp_path / "models.toml", stub_url)}
    )
    with serve(create_app(routed_settings, embedder=embedder)) as url:
        yield url


def ask(url: str, content: str, model: str = "auto", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"}, timeout=30
    )


def test_auto_routes_falls_back_and_hits_record_savings(routed: str, stub_url: str) -> None:
    miss = ask(routed, "What is the capital of Portugal?")
    assert miss.status_code == 200 and miss.headers["x-semcache"] == "miss"
    assert miss.headers["x-semcache-tier"] == "standard"
    assert miss.headers["x-semcache-model"] == "r-standard-backup"  # the tier's model answered 500
    assert miss.headers["x-semcache-attempts"] == "2"
    assert float(miss.headers["x-semcache-cost-usd"]) > 0
    hit = ask(routed, "what's the capital of Portugal?")
    assert hit.headers["x-semcache"] == "hit-semantic"
    assert float(hit.headers["x-semcache-saved-usd"]) == pytest.approx(
        float(miss.headers["x-semcache-cost-usd"])
    )
    stats = httpx.get(f"{routed}/v1/cache/repos/acme/stats").json()
    assert stats["cost_saved_usd"] == pytest.approx(float(hit.headers["x-semcache-saved-usd"]))
    [tier] = stats["spend"]["tiers"]
    assert (tier["tier"], tier["requests"], tier["hits"]) == ("standard", 1, 1)
    assert tier["spend_usd"] == pytest.approx(float(miss.headers["x-semcache-cost-usd"]))


def test_forced_tier_and_explicit_model(routed: str, stub_url: str) -> None:
    forced = ask(routed, "Tell me a joke about sockets", semcache={"tier": "complex"})
    assert (forced.headers["x-semcache-tier"], forced.headers["x-semcache-model"]) == ("complex", "r-complex")
    explicit = ask(routed, "Tell me a joke about pipes", model="r-bulk")
    assert explicit.headers["x-semcache-model"] == "r-bulk"
    unknown = ask(routed, "Tell me a joke about pipes", model="no-such-model")
    assert unknown.status_code == 400 and "no-such-model" in unknown.json()["error"]["message"]
    bad_tier = ask(routed, "Tell me a joke", semcache={"tier": "platinum"})
    assert bad_tier.status_code == 400


def test_streaming_miss_through_the_router_is_stored(routed: str, stub_url: str) -> None:
    miss = ask(routed, "Explain the CAP theorem briefly", stream=True)
    assert miss.headers["x-semcache"] == "miss" and miss.headers["x-semcache-model"] == "r-standard-backup"
    events = stream_events(miss)
    assert events[-1] == "[DONE]"
    hit = ask(routed, "Explain the CAP theorem briefly")
    assert hit.headers["x-semcache"] == "hit-exact"
    assert hit.json()["choices"][0]["message"]["content"] == streamed_text(events)
    assert upstream_calls(stub_url, "r-standard-backup") >= 1


def test_cli_stats_show_router_spend_and_savings(
    settings: Settings, embedder, stub_url: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from semcache.cli import app as cli_app
    from semcache.http.app import create_app

    config = registry(tmp_path / "models.toml", stub_url)
    with serve(create_app(settings.model_copy(update={"router_config": config}), embedder=embedder)) as url:
        ask(url, "Summarize the plot of Hamlet", model="r-complex")
        ask(url, "Summarize the plot of Hamlet", model="r-complex")
    env = {"SEMCACHE_ROUTER_CONFIG": str(config)}
    result = CliRunner().invoke(cli_app, ["stats", "acme", "--data-dir", str(settings.data_dir)], env=env)
    assert result.exit_code == 0, result.output
    assert "router" in result.output and "complex" in result.output and "50.0%" in result.output


def test_audit_calls_and_the_llm_judge_are_booked_as_audit_spend(
    settings: Settings, embedder, stub_url: str, tmp_path: Path
) -> None:
    from semcache.http.app import create_app

    audited = settings.model_copy(
        update={"router_config": registry(tmp_path / "models.toml", stub_url), "audit_rate": 1.0}
    )
    with serve(create_app(audited, embedder=embedder)) as url:
        ask(url, "What is the capital of Portugal?")
        assert ask(url, "what's the capital of Portugal?").headers["x-semcache"] == "hit-semantic"

        def report() -> dict:
            return httpx.get(f"{url}/v1/cache/repos/acme/stats").json()

        wait_for(lambda: report()["decision"]["labels"]["audit"] == 1)
        stats = report()
    audit = stats["decision"]["audit"]
    assert audit["judge"] == "llm" and audit["audits"] == 1 and audit["spend_usd"] > 0
    # the fresh answer echoes the new wording, so the stub's strict judge says the cached one differs
    assert stats["decision"]["labels"]["false_hit_share"]["estimate"] == 1.0
    tiers = {t["tier"]: t for t in stats["spend"]["tiers"]}
    assert tiers["standard"]["requests"] == 1  # audits are not client requests
    assert tiers["bulk"]["audit_spend_usd"] > 0  # the judge asked the cheapest tier
