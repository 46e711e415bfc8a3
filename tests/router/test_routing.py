"""Routing against the stub provider over real HTTP: fallback, retries, breakers, context, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from router import BreakerState, RequestError, RoutingFailed
from tests.router.conftest import LENIENT_BREAKER, StubClient, chat, make_router, model_toml

pytestmark = pytest.mark.anyio


def _standard(first: str) -> str:
    return f'[tiers.standard]\nmodel = "{first}"\n'


async def test_ok_route_records_tier_model_and_provider_usage(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    router = make_router(tmp_path, [model_toml("m-ok", "standard", stub_url)])
    try:
        result = await router.route(chat("How are you today?", system="Be brief."), repo="acme/api")
    finally:
        await router.aclose()
    assert result.model == "m-ok" and result.tier == "standard"
    assert result.content == "[m-ok] answer to: How are you today?"
    assert result.usage.input_tokens == result.completion["usage"]["prompt_tokens"]
    assert not result.usage.estimated
    assert [a.outcome for a in result.attempts] == ["ok"]
    assert stub.calls("m-ok") == 1


async def test_fallback_follows_the_registry_chain_in_order(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [
        model_toml("a-500", "standard", stub_url, fallback="b-503"),
        model_toml("b-503", "standard", stub_url, fallback="c-ok"),
        model_toml("c-ok", "standard", stub_url, fallback="d-ok"),
        model_toml("d-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("a-500"))
    try:
        result = await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert result.model == "c-ok"
    order = list(dict.fromkeys(a.model for a in result.attempts))
    assert order == ["a-500", "b-503", "c-ok"]
    assert stub.calls("d-ok") == 0
    assert stub.calls("a-500") >= 1 and stub.calls("b-503") >= 1


async def test_retryable_errors_are_retried_within_a_model(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    # flaky-2: the first two calls answer 500, the third succeeds; max_attempts is 3.
    models = [
        model_toml("m-flaky-2", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-flaky-2"), breaker=LENIENT_BREAKER)
    try:
        result = await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert result.model == "m-flaky-2"
    assert [a.outcome for a in result.attempts] == ["upstream_error", "upstream_error", "ok"]
    assert stub.calls("m-ok") == 0


async def test_no_retry_and_no_fallback_on_400(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("m-400", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-400"))
    try:
        with pytest.raises(RoutingFailed) as info:
            await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert info.value.status == 400 and not info.value.retryable
    assert "stub 400" in str(info.value)
    assert stub.calls("m-400") == 1 and stub.calls("m-ok") == 0


@pytest.mark.parametrize("status", ["401", "404"])
async def test_auth_and_not_found_stop_the_chain(
    tmp_path: Path, stub_url: str, stub: StubClient, status: str
) -> None:
    first = f"m-{status}"
    models = [
        model_toml(first, "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard(first))
    try:
        with pytest.raises(RoutingFailed) as info:
            await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    # about the server's own key or base URL: a gateway error, never the client's 401 / 404
    assert info.value.status == 502 and info.value.kind in ("upstream_auth_error", "upstream_not_found")
    assert stub.calls(first) == 1 and stub.calls("m-ok") == 0


async def test_retry_after_is_honoured(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("m-429-ra0.2", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-429-ra0.2"), breaker=LENIENT_BREAKER)
    try:
        result = await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert result.model == "m-ok"
    assert [a.outcome for a in result.attempts][:3] == ["upstream_rate_limited"] * 3
    # Two waits of Retry-After 0.2 s between three tries: generous lower bound only.
    assert result.latency_ms >= 350


async def test_too_long_retry_after_abandons_the_model_at_once(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    # Retry-After 5 s exceeds max_retry_after_s = 1 s: fall back without waiting.
    models = [
        model_toml("m-429-ra5", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-429-ra5"))
    try:
        result = await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert result.model == "m-ok"
    assert stub.calls("m-429-ra5") == 1
    assert result.latency_ms < 4000


async def test_latency_budget_abandons_a_slow_model(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("m-slow-3000ms", "standard", stub_url, fallback="m-ok", timeout_s=0.3),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-slow-3000ms"))
    try:
        result = await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert result.model == "m-ok"
    assert result.attempts[0].outcome == "upstream_timeout"
    assert result.latency_ms < 2500


async def test_breaker_opens_fails_fast_half_opens_and_closes(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    # flaky-3: calls 1-3 answer 500, later ones succeed. One try per request; breaker opens at 2/2 failures.
    models = [
        model_toml("m-flaky-3", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-flaky-3"), retry={"max_attempts": 1})
    breaker = router._breakers["m-flaky-3"]
    served: list[str] = []
    try:
        for _ in range(2):
            served.append((await router.route(chat("hi"), repo="r")).model)
        assert breaker.state is BreakerState.OPEN
        skipped = await router.route(chat("hi"), repo="r")
        assert skipped.attempts[0].outcome == "breaker_open" and stub.calls("m-flaky-3") == 2
        await asyncio.sleep(0.35)
        assert breaker.state is BreakerState.HALF_OPEN
        probe_failed = await router.route(chat("hi"), repo="r")  # call 3 still fails: reopen
        assert probe_failed.model == "m-ok" and breaker.state is BreakerState.OPEN
        await asyncio.sleep(0.35)
        probe_ok = await router.route(chat("hi"), repo="r")  # call 4 succeeds: close
        assert probe_ok.model == "m-flaky-3" and breaker.state is BreakerState.CLOSED
        assert (await router.route(chat("hi"), repo="r")).model == "m-flaky-3"
    finally:
        await router.aclose()
    assert served == ["m-ok", "m-ok"]


async def test_all_models_failing_ends_with_every_attempt(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [
        model_toml("a-500", "standard", stub_url, fallback="b-503"),
        model_toml("b-503", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("a-500"))
    try:
        with pytest.raises(RoutingFailed) as info:
            await router.route(chat("hi"), repo="r")
    finally:
        await router.aclose()
    assert info.value.retryable and info.value.status == 502
    assert {a.model for a in info.value.attempts} == {"a-500", "b-503"}
    assert "a-500 -> b-503" in str(info.value)
    assert stub.calls() <= 6  # bounded: max_attempts per model


async def test_request_too_long_for_a_model_skips_it(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("m-small", "standard", stub_url, fallback="m-large", max_context_tokens=800),
        model_toml("m-large", "standard", stub_url, max_context_tokens=100_000),
    ]
    router = make_router(tmp_path, models, _standard("m-small"))
    try:
        short = await router.route(chat("hi"), repo="r")
        long = await router.route(chat("word " * 2000), repo="r")
        with pytest.raises(RoutingFailed) as info:
            await router.route(chat("word " * 200_000), repo="r")
    finally:
        await router.aclose()
    assert short.model == "m-small"
    assert long.model == "m-large" and long.attempts[0].outcome == "context_too_small"
    assert info.value.kind == "context_length_exceeded" and info.value.status == 400
    assert stub.calls("m-small") == 1


async def test_forced_tier_and_model(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("bulk-ok", "bulk", stub_url),
        model_toml("std-ok", "standard", stub_url),
        model_toml("cx-ok", "complex", stub_url),
    ]
    router = make_router(tmp_path, models)
    try:
        by_tier = await router.route(chat("hi"), repo="r", tier="complex")
        by_model = await router.route(chat("hi"), repo="r", model="bulk-ok")
        with pytest.raises(RequestError, match="unknown tier"):
            await router.route(chat("hi"), repo="r", tier="gold")
        with pytest.raises(RequestError, match="no messages"):
            await router.route({"messages": []}, repo="r")
    finally:
        await router.aclose()
    assert (by_tier.tier, by_tier.model, by_tier.classification.source) == ("complex", "cx-ok", "forced_tier")
    assert (by_model.tier, by_model.model) == ("bulk", "bulk-ok")


async def test_classifier_picks_the_tier(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [
        model_toml("bulk-ok", "bulk", stub_url),
        model_toml("std-ok", "standard", stub_url),
        model_toml("json-ok", "structured", stub_url),
        model_toml("cx-ok", "complex", stub_url),
    ]
    router = make_router(tmp_path, models)
    try:
        bulk = await router.route(
            chat("Write pytest unit tests for this function: def add(a, b): ..."), repo="r"
        )
        structured = await router.route(
            {**chat("List the people mentioned."), "response_format": {"type": "json_object"}}, repo="r"
        )
        complex_ = await router.route(
            chat("We have a race condition in our payment service under load; help me find the root cause."),
            repo="r",
        )
    finally:
        await router.aclose()
    assert (bulk.model, structured.model, complex_.model) == ("bulk-ok", "json-ok", "cx-ok")
