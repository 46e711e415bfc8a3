"""Streaming, batch and shadow mode through the router, against the stub provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from router import RequestError, RoutingFailed, UpstreamError
from tests.router.conftest import StubClient, chat, make_router, model_toml

pytestmark = pytest.mark.anyio


def _standard(first: str, shadow: str = "", share: float = 1.0) -> str:
    text = f'[tiers.standard]\nmodel = "{first}"\n'
    return text + (f'shadow_model = "{shadow}"\nshadow_share = {share}\n' if shadow else "")


async def test_streaming_miss_through_the_router(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    router = make_router(tmp_path, [model_toml("m-ok", "standard", stub_url)])
    try:
        meta, chunks = await router.route_stream(chat("stream this please", system="sys"), repo="r")
        assert (meta.model, meta.tier, meta.completed) == ("m-ok", "standard", False)
        parts = [c async for c in chunks]
        rows = router.ledger.calls(meta.request_id)
    finally:
        await router.aclose()
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in parts if c.get("choices"))
    assert text == "[m-ok] answer to: stream this please"
    assert meta.completed and meta.finish_reason == "stop"
    usage = next(c["usage"] for c in parts if c.get("usage"))
    assert (meta.usage.input_tokens, meta.usage.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    [row] = rows
    assert row.input_tokens == usage["prompt_tokens"] and row.cost_usd == pytest.approx(meta.cost_usd)


async def test_stream_falls_back_before_the_first_chunk(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [
        model_toml("m-500", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-500"))
    try:
        meta, chunks = await router.route_stream(chat("hi"), repo="r")
        parts = [c async for c in chunks]
    finally:
        await router.aclose()
    assert meta.model == "m-ok" and meta.attempts[0].model == "m-500"
    assert any("[m-ok]" in (c["choices"][0]["delta"].get("content") or "") for c in parts if c.get("choices"))


async def test_broken_stream_after_first_chunk_raises_without_fallback(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [
        model_toml("m-broken-stream", "standard", stub_url, fallback="m-ok"),
        model_toml("m-ok", "standard", stub_url),
    ]
    router = make_router(tmp_path, models, _standard("m-broken-stream"))
    received = []
    try:
        meta, chunks = await router.route_stream(chat("one two three four five"), repo="r")
        with pytest.raises(UpstreamError):
            async for chunk in chunks:
                received.append(chunk)
        rows = router.ledger.calls(meta.request_id)
    finally:
        await router.aclose()
    assert received, "chunks before the break were relayed"
    assert not meta.completed and meta.attempts[-1].outcome == "stream_broken"
    assert stub.calls("m-ok") == 0, "no fallback once bytes were sent"
    assert rows[-1].outcome == "stream_broken" and rows[-1].output_tokens > 0


async def test_batch_isolates_failures_and_keeps_order(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [model_toml("m-ok", "standard", stub_url), model_toml("m-bad-500", "complex", stub_url)]
    router = make_router(tmp_path, models)
    bodies = [chat(f"question {i}") for i in range(10)]
    bodies[3] = {"messages": []}
    try:
        items = await router.batch(bodies, repo="r", concurrency=3)
        failing = await router.batch([chat("a"), chat("b")], repo="r", tier="complex", concurrency=2)
    finally:
        await router.aclose()
    assert [i.index for i in items] == list(range(10))
    assert [i.ok for i in items] == [i != 3 for i in range(10)]
    assert isinstance(items[3].error, RequestError)
    assert items[5].result is not None and items[5].result.content.endswith("question 5")
    assert all(isinstance(i.error, RoutingFailed) for i in failing)


async def test_shadow_answer_is_logged_and_never_returned(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [model_toml("primary", "standard", stub_url), model_toml("candidate", "standard", stub_url)]
    router = make_router(tmp_path, models, _standard("primary", shadow="candidate"))
    try:
        results = [await router.route(chat(f"q{i}"), repo="r") for i in range(3)]
        await router.drain()
        records = router.ledger.shadow_records("r")
        stats = router.ledger.stats("r")
    finally:
        await router.aclose()
    assert all(r.model == "primary" and "[primary]" in r.content for r in results)
    assert all("[candidate]" not in r.content for r in results)
    assert len(records) == 3 and stub.calls("candidate") == 3
    assert all(
        rec.candidate_answer.startswith("[candidate]") and rec.primary_answer.startswith("[primary]")
        for rec in records
    )
    [row] = stats
    assert row.requests == 3 and row.shadow_spend_usd > 0
    assert row.spend_usd == pytest.approx(sum(r.cost_usd for r in results))


async def test_failing_shadow_never_affects_the_answer(
    tmp_path: Path, stub_url: str, stub: StubClient
) -> None:
    models = [model_toml("primary", "standard", stub_url), model_toml("cand-500", "standard", stub_url)]
    router = make_router(tmp_path, models, _standard("primary", shadow="cand-500"))
    try:
        result = await router.route(chat("hi"), repo="r")
        await router.drain()
        [record] = router.ledger.shadow_records()
    finally:
        await router.aclose()
    assert result.model == "primary"
    assert record.candidate_answer == "" and "500" in record.candidate_error


async def test_shadow_share_samples_traffic(tmp_path: Path, stub_url: str, stub: StubClient) -> None:
    models = [model_toml("primary", "standard", stub_url), model_toml("candidate", "standard", stub_url)]
    router = make_router(tmp_path, models, _standard("primary", shadow="candidate", share=0.25))
    try:
        for i in range(40):
            await router.route(chat(f"q{i}"), repo="r")
        await router.drain()
    finally:
        await router.aclose()
    assert 2 <= stub.calls("candidate") <= 25
