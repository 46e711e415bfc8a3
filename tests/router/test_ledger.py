"""The ledger: sums against the stub's usage, savings, budgets, stats and the routing log."""

from __future__ import annotations

from pathlib import Path

import pytest

from router import total_stats
from tests.router.conftest import StubClient, chat, make_ledger, make_router, model_toml

URL = "http://127.0.0.1:9/v1"


@pytest.mark.anyio
async def test_ledger_sums_equal_the_stub_usage(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("bulk-ok", "bulk", stub_url, prices=(0.1, 0.4, 0.025)),
        model_toml("std-ok", "standard", stub_url, prices=(0.4, 1.6, 0.1)),
    ]
    router = make_router(tmp_path, models)
    usages = []
    try:
        for i in range(6):
            tier = "bulk" if i % 2 else "standard"
            repo = "a/one" if i < 4 else "b/two"
            body = chat(f"please answer question number {i} " * (i + 1), system="You are terse.")
            result = await router.route(body, repo=repo, tier=tier)
            usages.append((repo, tier, result.completion["usage"], result.cost_usd))
        stats = router.ledger.stats()
    finally:
        await router.aclose()
    for row in stats:
        mine = [u for r, t, u, _ in usages if (r, t) == (row.repo, row.tier)]
        assert row.requests == len(mine)
        assert row.input_tokens == sum(u["prompt_tokens"] for u in mine)
        assert row.output_tokens == sum(u["completion_tokens"] for u in mine)
    total = total_stats(stats)
    assert total.spend_usd == pytest.approx(sum(c for *_, c in usages))
    # The stub counts the system prompt too: 3 framing + words per message.
    assert total.input_tokens == sum(u["prompt_tokens"] for _, _, u, _ in usages)


@pytest.mark.anyio
async def test_budget_alert_fires_once_per_scope_and_month(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    extra = '[budgets]\nglobal_monthly_usd = 1.0\n[budgets.repos]\n"tight/repo" = 0.000001\n'
    # A pricey model so that one call crosses the repo budget but not the global one.
    models = [model_toml("m-ok", "standard", stub_url, prices=(10.0, 10.0, 1.0))]
    router = make_router(tmp_path, models, extra)
    try:
        for _ in range(3):
            await router.route(chat("hello"), repo="tight/repo")
        await router.route(chat("hello"), repo="roomy/repo")
        alerts = router.ledger.alerts()
    finally:
        await router.aclose()
    [alert] = alerts
    assert alert.repo == "tight/repo" and alert.spend_usd >= alert.limit_usd
    assert router.metrics.get_sample_value("router_budget_alerts_total", {"repo": "tight/repo"}) == 1.0
    assert router.metrics.get_sample_value("router_budget_alerts_total", {"repo": "*"}) is None


def test_record_saving_prices_at_the_serving_model(tmp_path: Path) -> None:
    models = [
        model_toml("cheap", "bulk", URL, prices=(1.0, 2.0, 0.5)),
        model_toml("mid", "standard", URL),
        model_toml("dear", "complex", URL, prices=(10.0, 20.0, 5.0)),
    ]
    ledger = make_ledger(tmp_path, models)
    by_model = ledger.record_saving("r", model="dear", input_tokens=1000, output_tokens=500)
    by_tier = ledger.record_saving("r", tier="bulk", input_tokens=1000, output_tokens=500)
    assert by_model == pytest.approx((1000 * 10 + 500 * 20) / 1e6)
    assert by_tier == pytest.approx((1000 * 1 + 500 * 2) / 1e6)
    rows = {s.tier: s for s in ledger.stats("r")}
    assert rows["complex"].hits == 1 and rows["complex"].saved_usd == pytest.approx(by_model)
    assert rows["bulk"].hit_rate == 1.0
    ledger.close()


@pytest.mark.anyio
async def test_routing_log_feedback_becomes_training_examples(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [model_toml("std-ok", "standard", stub_url), model_toml("cx-ok", "complex", stub_url)]
    router = make_router(tmp_path, models)
    try:
        result = await router.route(chat("Is our token refresh flow safe?"), repo="r")
        assert router.ledger.record_feedback(result.request_id, "complex")
        assert not router.ledger.record_feedback("no-such-id", "complex")
        [example] = router.ledger.feedback_examples()
    finally:
        await router.aclose()
    assert (example.prompt, example.tier) == ("Is our token refresh flow safe?", "complex")
