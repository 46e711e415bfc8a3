"""The audit's judges: what each tells apart, and that an undecided judge makes no label."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from semcache.errors import ConfigError
from semcache.http.judges import EmbeddingJudge, ExactJudge, JudgeFailed, LLMJudge
from semcache.http.upstream import build_judge, build_upstream
from semcache.store.sqlite import Store
from tests.helpers import chat, upstream_calls
from tests.servers import serve, wait_for


def same(judge, cached: str, fresh: str) -> bool:
    return asyncio.run(judge.same("How do I reverse a list?", cached, fresh, "acme"))


def test_exact_normalises_case_and_spaces_only() -> None:
    assert same(ExactJudge(), "Use  reversed(x).", "use reversed(x).")
    assert not same(ExactJudge(), "Use reversed(x).", "Use x[::-1].")


def test_embedding_tells_topics_apart(embedder) -> None:
    judge = EmbeddingJudge(embedder)
    assert same(
        judge,
        "Call list.reverse() to reverse the list in place.",
        "Call list.reverse() to reverse a list in place.",
    )
    assert not same(
        judge, "Call list.reverse() to reverse the list in place.", "Paris is the capital of France."
    )


def reply(text: str):
    async def ask(body: dict, repo: str) -> dict:
        assert "Answer A:" in body["messages"][0]["content"] and repo == "acme"
        return {"choices": [{"message": {"role": "assistant", "content": text}}]}

    return ask


async def failing(body: dict, repo: str) -> dict:
    raise RuntimeError("the judge's tier is down")


def test_llm_reads_yes_or_no_and_fails_on_anything_else() -> None:
    assert same(LLMJudge(reply("Yes."), "auto"), "a", "b")
    assert not same(LLMJudge(reply("no"), "auto"), "a", "b")
    for ask in (reply("Maybe, it depends."), reply(""), failing):
        with pytest.raises(JudgeFailed):
            same(LLMJudge(ask, "auto"), "a", "b")


def test_without_a_router_the_llm_judge_asks_the_named_model(settings, embedder, stub_url: str) -> None:
    from semcache.http.app import create_app

    audited = settings.model_copy(
        update={
            "audit_rate": 1.0,
            "min_similarity": 0.99,  # the paraphrase is a near miss, judged against the fresh answer
            "decision_min_similarity": 0.5,
            "audit_judge_model": "stub-judge",
        }
    )
    assert audited.judge_name() == "llm"  # naming a judge model picks the llm judge
    before = upstream_calls(stub_url, "stub-judge")
    with serve(create_app(audited, embedder=embedder)) as url:
        chat(url, "How do I reverse a list in Python?", model="m-judged")
        chat(url, "How can I reverse a Python list?", model="m-judged")
        stats = f"{url}/v1/cache/repos/acme/stats"
        wait_for(lambda: httpx.get(stats).json()["decision"]["labels"]["near_miss"] == 1)
        decision = httpx.get(stats).json()["decision"]
    assert decision["audit"]["judge"] == "llm" and decision["audit"]["judge_moves_threshold"]
    assert upstream_calls(stub_url, "stub-judge") == before + 1
    # the stub answers each prompt with its own text, so the judge says "no": a wrong label
    store = Store(audited.db_path)
    assert store.read("SELECT label, judge FROM labels", plain=True) == [(0, "llm")]
    store.close()


def test_the_llm_judge_without_a_router_or_a_model_is_refused(settings, embedder) -> None:
    llm = settings.model_copy(update={"audit_judge": "llm"})
    with pytest.raises(ConfigError, match="SEMCACHE_AUDIT_JUDGE_MODEL"):
        build_judge(llm, build_upstream(llm, embedder), embedder)
