"""The audit's judges: what each tells apart, and that an undecided judge makes no label."""

from __future__ import annotations

import asyncio

import pytest

from semcache.http.judges import EmbeddingJudge, ExactJudge, JudgeFailed, LLMJudge


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
