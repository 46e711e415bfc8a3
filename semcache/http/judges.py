"""Judges: do two answers to one request serve the asker equally? The audit asks one whenever it has
a cached answer and a fresh upstream answer for the same request (see ``semcache.http.audit``).

- ``exact``: the two texts are equal once case and whitespace are normalised. Right for deterministic
  upstreams (tests, stream replays); on a sampled LLM two right answers almost never match, so it calls
  most right hits wrong and only ever makes the threshold stricter.
- ``embedding``: the cosine of the two answers' embeddings (the cache's own model) reaches
  :data:`EMBEDDING_THRESHOLD`. It tells a different topic apart, not a different detail: two answers
  that differ in one number, name or negation are scored alike.
- ``llm``: the router's cheapest tier (or, without a router, the model ``audit_judge_model`` names,
  through the one upstream) is asked one fixed yes/no question about the two answers; it reads details
  (numbers, negations) but costs one call (with the router, recorded in the ledger as judge spend) and
  inherits that model's mistakes.

A judge that cannot decide raises :class:`JudgeFailed`: no label is recorded, so a failing judge never
moves a threshold.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio.to_thread
import numpy as np

from semcache.embedding import Embedder
from semcache.keys import normalize_prompt

# Measured with the cache's MiniLM on the shared sentence pairs: at cosine >= 0.95, 94 % of MRPC's pairs
# (477 of 5 801) and 85 % of STS-B's (289 of 8 628) are paraphrases; at 0.9, 89 % and 75 %. A judge that
# calls wrong answers "same" hides false hits, so it sits high. See docs/decision.md.
EMBEDDING_THRESHOLD = 0.95

JUDGE_QUESTION = (
    "Two answers were given to the same request.\n\nRequest:\n{prompt}\n\nAnswer A:\n{cached}\n\n"
    "Answer B:\n{fresh}\n\nDoes answer A serve the person who made this request as well as answer B "
    "(same facts, same instructions, nothing wrong or missing)? Reply with one word: yes or no."
)


class JudgeFailed(Exception):
    """The judge could not decide (its model failed or answered neither yes nor no)."""


class Judge(Protocol):
    """Compares a cached answer with a fresh one for the same request."""

    name: str

    async def same(self, prompt: str, cached: str, fresh: str, repo: str) -> bool:
        """True when the cached answer serves the request as the fresh one does (``repo`` books any
        cost the judge has)."""
        ...


def answer_text(completion: dict[str, Any]) -> str:
    """The text of a chat completion's choices, joined (empty when it has none)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list):
        return ""
    parts = [c.get("message", {}).get("content") for c in choices if isinstance(c, dict)]
    return "\n".join(p for p in parts if isinstance(p, str))


class ExactJudge:
    """Equal after normalising case and whitespace."""

    name = "exact"

    async def same(self, prompt: str, cached: str, fresh: str, repo: str) -> bool:
        """Whether the two normalised texts are equal."""
        return normalize_prompt(cached).casefold() == normalize_prompt(fresh).casefold()


class EmbeddingJudge:
    """The two answers' embeddings are at least ``threshold`` cosine apart."""

    name = "embedding"

    def __init__(self, embedder: Embedder, threshold: float = EMBEDDING_THRESHOLD) -> None:
        self._embedder = embedder
        self._threshold = threshold

    async def same(self, prompt: str, cached: str, fresh: str, repo: str) -> bool:
        """Whether the answers' cosine reaches the threshold."""
        if not cached.strip() or not fresh.strip():
            raise JudgeFailed("an answer has no text to compare")
        vectors = await anyio.to_thread.run_sync(self._embedder.encode, [cached, fresh])
        return float(np.dot(vectors[0], vectors[1])) >= self._threshold


class LLMJudge:
    """One yes/no question to a model, asked through ``ask`` (a chat body and the repo to book it under
    in, a completion out)."""

    name = "llm"

    def __init__(self, ask: Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]], model: str) -> None:
        self._ask = ask
        self._model = model

    async def same(self, prompt: str, cached: str, fresh: str, repo: str) -> bool:
        """The model's yes or no; anything else fails."""
        question = JUDGE_QUESTION.format(prompt=prompt, cached=cached, fresh=fresh)
        body = {
            "model": self._model,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 3,
        }
        try:
            reply = answer_text(await self._ask(body, repo))
        except Exception as exc:  # any failure of the judge's model is "undecided", never a label
            raise JudgeFailed(f"the judge's model failed: {exc}") from exc
        word = re.match(r"\W*(\w+)", reply.lower())
        if word is None or word.group(1) not in ("yes", "no"):
            raise JudgeFailed(f"the judge answered neither yes nor no: {reply[:80]!r}")
        return word.group(1) == "yes"
