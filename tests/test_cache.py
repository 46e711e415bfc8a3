"""SemanticCache with a real SQLite store, real FAISS and (mostly) the real packaged model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from semcache.cache.semantic import Lookup, SemanticCache, is_cacheable
from semcache.config import Settings
from semcache.decision import Encoded
from semcache.errors import Conflict, InvalidRequest, NotFound
from semcache.store.sqlite import GLOBAL
from tests.conftest import HashEmbedder
from tests.helpers import completion, request


@pytest.fixture
def stub_url(stub_url: str, pg_stub_url: str, store_kind: str) -> str:
    """Each store's run counts upstream calls on a stub of its own."""
    return pg_stub_url if store_kind == "postgres" else stub_url


@pytest.fixture
def settings(any_store_settings: Settings) -> Settings:
    """This module's tests run on both stores (SQLite + FAISS, PostgreSQL + pgvector)."""
    return any_store_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(settings: Settings, embedder, clock: Clock) -> Iterator[SemanticCache]:
    cache = SemanticCache(settings, embedder=embedder, clock=clock)
    cache.start()
    yield cache
    cache.close()


def test_exact_and_paraphrase_hit_unrelated_miss(cache: SemanticCache) -> None:
    stored = request("How do I reverse a list in Python?")
    entry_id = cache.store(stored, completion("Use reversed() or list.reverse()."))
    exact = cache.lookup(request("How do I reverse a list in Python?"))
    assert exact.hit is not None and exact.hit.kind == "exact" and exact.hit.entry.id == entry_id
    paraphrase = cache.lookup(request("How can I reverse a list in python?"))
    assert paraphrase.hit is not None and paraphrase.hit.kind == "semantic"
    assert (
        paraphrase.hit.entry.response["choices"][0]["message"]["content"]
        == "Use reversed() or list.reverse()."
    )
    assert cache.lookup(request("What is the boiling point of water at sea level?")).hit is None
    stats = cache.stats("acme")
    assert (stats.hits_exact, stats.hits_semantic, stats.misses, stats.entries) == (1, 1, 1, 1)
    assert stats.tokens_saved == 30


def test_paraphrase_in_another_scope_or_repo_misses(cache: SemanticCache) -> None:
    cache.store(request("How do I reverse a list in Python?"), completion("reversed()"))
    assert cache.lookup(request("How can I reverse a list in python?", temperature=1.0)).hit is None
    assert cache.lookup(request("How can I reverse a list in python?", repo="other")).hit is None
    assert cache.lookup(request("How do I reverse a list in Python?", repo="other")).hit is None


def test_scope_restricted_search_finds_an_entry_crowded_out_by_other_scopes(
    settings: Settings, clock: Clock
) -> None:
    cache = SemanticCache(settings.model_copy(update={"top_k": 1}), embedder=HashEmbedder(), clock=clock)
    for i in range(40):  # 40 identical prompts in other scopes outrank this scope's entry in the wide search
        cache.store(request("reverse a list in python", seed=i), completion(f"other scope {i}"))
    cache.store(request("reverse a python list now"), completion("mine"))
    loose = request("reverse a list in python", semcache={"min_similarity": 0.5})
    found = cache.lookup(loose).hit
    assert found is not None and found.entry.response["choices"][0]["message"]["content"] == "mine"
    strict = request("reverse a list in python", semcache={"min_similarity": 0.95})
    assert cache.lookup(strict).hit is None
    cache.close()


def test_ttl_is_absolute_and_expired_entries_are_never_served(cache: SemanticCache, clock: Clock) -> None:
    cache.store(request("What is a monad?", semcache={"ttl_s": 100}), completion("A monoid in endofunctors."))
    clock.now += 60
    assert cache.lookup(request("What is a monad?")).hit is not None  # a hit does not extend the TTL
    clock.now += 41
    assert cache.lookup(request("What is a monad?")).hit is None
    assert cache.lookup(request("What's a monad?")).hit is None
    assert cache.sweep() == 1
    assert cache.stats("acme").entries == 0


def test_ttl_over_the_limit_is_refused(cache: SemanticCache) -> None:
    with pytest.raises(InvalidRequest, match="ttl_s"):
        cache.lookup(request("x", semcache={"ttl_s": 10**12}))


def test_only_complete_text_answers_are_stored(cache: SemanticCache) -> None:
    tool = completion("")
    tool["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}
    nan = {**completion("fine"), "usage": {"prompt_tokens": float("nan")}}  # an upstream's NaN, read by json
    for bad in (completion("truncated", finish="length"), completion(""), completion("   "), tool, {}, nan):
        assert not is_cacheable(bad)
        assert cache.store(request("Explain quicksort"), bad) is None
    assert cache.store(request("Explain quicksort", semcache={"no_store": True}), completion("ok")) is None
    assert cache.stats("acme").entries == 0
    with pytest.raises(InvalidRequest, match="stop"):
        cache.put(request("Explain quicksort"), completion("cut", finish="length"))


def test_no_cache_bypasses_lookup(cache: SemanticCache) -> None:
    cache.store(request("Explain quicksort"), completion("divide and conquer"))
    assert cache.lookup(request("Explain quicksort", semcache={"no_cache": True})).hit is None


def test_restoring_the_same_prompt_replaces_the_entry(cache: SemanticCache) -> None:
    first = cache.store(request("Explain quicksort"), completion("v1"))
    second = cache.store(request("Explain quicksort"), completion("v2"))
    assert second != first and cache.stats("acme").entries == 1
    hit = cache.lookup(request("Please explain quicksort")).hit
    assert hit is not None and hit.entry.id == second


def test_purge_is_isolated_between_repos(cache: SemanticCache, settings: Settings) -> None:
    cache.store(request("Explain quicksort", repo="a"), completion("qa"))
    cache.store(request("Explain quicksort", repo="b"), completion("qb"))
    assert cache.purge("a") == 1
    assert cache.repos() == {"b": 1}
    assert not (settings.index_dir / "a.faiss").exists()
    assert cache.lookup(request("Explain quicksort", repo="a")).hit is None
    hit = cache.lookup(request("Please explain quicksort", repo="b")).hit
    assert hit is not None and hit.entry.repo == "b"


def test_context_file_purge_removes_only_dependent_entries(cache: SemanticCache) -> None:
    files = {"context_files": [{"path": "src/app.py", "sha": "1"}]}
    cache.store(request("What does main() do?", semcache=files), completion("starts the app"))
    cache.store(request("What is a monad?"), completion("a burrito"))
    assert cache.purge_context_file("acme", "src/app.py") == 1
    assert cache.lookup(request("What does main() do?", semcache=files)).hit is None
    assert cache.lookup(request("What is a monad?")).hit is not None


def test_max_entries_evicts_least_recently_hit(settings: Settings, embedder, clock: Clock) -> None:
    cache = SemanticCache(
        settings.model_copy(update={"max_entries_per_repo": 2}), embedder=embedder, clock=clock
    )
    cache.store(request("What is a monad?"), completion("m"))
    clock.now += 1
    cache.store(request("Explain quicksort"), completion("q"))
    clock.now += 1
    assert cache.lookup(request("What is a monad?")).hit is not None  # monad is now the recently hit one
    clock.now += 1
    cache.store(request("How do I center a div in CSS?"), completion("flexbox"))
    assert cache.stats("acme").entries == 2
    assert cache.lookup(request("Explain quicksort")).hit is None
    assert cache.lookup(request("What is a monad?")).hit is not None
    cache.close()


def test_wrong_hit_report_evicts_and_keeps_a_negative(cache: SemanticCache) -> None:
    entry_id = cache.store(request("Cancel my subscription"), completion("Cancelled."))
    cache.report_wrong_hit("acme", entry_id, "Don't cancel my subscription", 0.97)
    assert cache.lookup(request("Cancel my subscription")).hit is None
    [row] = cache.feedback("acme")
    assert (row["query_prompt"], row["cached_prompt"], row["label"]) == (
        "Don't cancel my subscription",
        "Cancel my subscription",
        0,
    )
    with pytest.raises(NotFound):
        cache.report_wrong_hit("acme", entry_id, "again")


@pytest.mark.sqlite_only
def test_restart_rebuilds_a_deleted_or_corrupt_index(settings: Settings, embedder, clock: Clock) -> None:
    cache = SemanticCache(settings, embedder=embedder, clock=clock)
    cache.start()
    cache.store(request("How do I reverse a list in Python?"), completion("reversed()"))
    cache.close()
    index_file = settings.index_dir / "acme.faiss"
    assert index_file.exists()
    for damage in (index_file.unlink, lambda: index_file.write_bytes(b"garbage")):
        damage()
        again = SemanticCache(settings, embedder=embedder, clock=clock)
        again.start()
        hit = again.lookup(request("How can I reverse a list in python?")).hit
        assert hit is not None and hit.kind == "semantic"
        again.close()


def test_a_purge_in_small_batches_removes_every_entry_and_nothing_else(cache: SemanticCache) -> None:
    topics = [
        "quicksort",
        "mergesort",
        "heapsort",
        "binary search",
        "tries",
        "hash maps",
        "b-trees",
        "red-black trees",
        "bloom filters",
        "skip lists",
    ]
    for topic in topics:
        cache.store(request(f"Explain {topic}", repo="a"), completion(topic))
    cache.store(request("Explain quicksort", repo="b"), completion("qb"))
    assert cache.purge("a", batch=3) == len(topics)  # four batches and the final sweep
    assert cache.repos() == {"b": 1} and cache.stats("a").entries == 0
    assert cache.lookup(request("Explain heapsort", repo="a")).hit is None
    assert cache.lookup(request("Explain quicksort", repo="b")).hit is not None
    entry_id = cache.store(request("Explain tries", repo="a"), completion("new"))  # the repo is usable again
    assert cache.lookup(request("Explain tries", repo="a")).hit.entry.id == entry_id


def test_a_purge_hides_the_repo_at_once_and_a_restart_finishes_one_cut_short(
    settings: Settings, embedder, clock: Clock, cache: SemanticCache
) -> None:
    topics = ["quicksort", "mergesort", "heapsort", "tries"]
    for topic in topics:
        cache.store(request(f"Explain {topic}", repo="a"), completion(topic))
    cache.store(request("Explain quicksort", repo="b"), completion("qb"))
    # The first half of a purge (mark, empty the index), as a process stopped mid-purge leaves it.
    assert cache._purges.begin("a") == len(topics) and cache.purging("a")
    assert cache.stats("a").entries == len(topics)  # the purge's own count, not a COUNT of the rows
    assert cache.lookup(request("Explain heapsort", repo="a")).hit is None  # not even the exact hit
    assert cache.store(request("Explain bloom filters", repo="a"), completion("bf")) is None
    with pytest.raises(Conflict):
        cache.put(request("Explain bloom filters", repo="a"), completion("bf"))
    assert cache.lookup(request("Explain quicksort", repo="b")).hit is not None
    again = SemanticCache(settings, embedder=embedder, clock=clock)  # the next start
    again.start()
    for _ in range(500):
        if not again.purging("a"):
            break
        time.sleep(0.01)
    assert not again.purging("a") and again.repos() == {"b": 1} and again.stats("a").entries == 0
    assert again.lookup(request("Explain quicksort", repo="b")).hit is not None
    assert again.store(request("Explain tries", repo="a"), completion("new")) is not None  # usable again
    again.close()


def test_another_process_purge_is_seen(
    settings: Settings, embedder, clock: Clock, cache: SemanticCache
) -> None:
    cache.store(request("Explain quicksort"), completion("q"))
    assert cache.lookup(request("Please explain quicksort")).hit is not None
    other = SemanticCache(settings, embedder=embedder, clock=clock)  # like the CLI: its own connection
    assert other.purge("acme") == 1
    other.close()
    assert cache.lookup(request("Please explain quicksort")).hit is None
    entry_id = cache.store(request("Explain quicksort"), completion("q2"))
    hit = cache.lookup(request("Please explain quicksort")).hit
    assert hit is not None and hit.entry.id == entry_id


# -- properties, with a fast deterministic embedder ---------------------------------------------

words = st.lists(
    st.sampled_from(["alpha", "beta", "gamma", "delta", "list", "python", "sort", "merge", "cache", "index"]),
    min_size=1,
    max_size=6,
).map(" ".join)


def fast_cache(tmp_path: Path, name: str) -> SemanticCache:
    settings = Settings(data_dir=tmp_path / name, decision="cosine")
    return SemanticCache(settings, embedder=HashEmbedder(), clock=Clock())


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=words, counter=st.integers(0, 10**9))
def test_property_store_then_lookup_hits(tmp_path: Path, prompt: str, counter: int) -> None:
    cache = fast_cache(tmp_path, f"p{counter}")
    cache.store(request(prompt), completion("answer"))
    hit = cache.lookup(request(prompt)).hit
    assert hit is not None and hit.kind == "exact"
    cache.close()


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stored=st.lists(words, min_size=1, max_size=8),
    query=words,
    low=st.floats(0.05, 1.0),
    high=st.floats(0.05, 1.0),
    counter=st.integers(0, 10**9),
)
def test_property_stricter_threshold_never_adds_hits(
    tmp_path: Path, stored: list[str], query: str, low: float, high: float, counter: int
) -> None:
    low, high = min(low, high), max(low, high)
    cache = fast_cache(tmp_path, f"t{counter}")
    for text in stored:
        cache.store(request(text), completion(text))
    strict = cache.lookup(request(query, semcache={"min_similarity": high}), count=False).hit
    loose = cache.lookup(request(query, semcache={"min_similarity": low}), count=False).hit
    assert strict is None or loose is not None
    cache.close()


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.lists(words, min_size=1, max_size=5),
    b=st.lists(words, min_size=1, max_size=5),
    counter=st.integers(0, 10**9),
)
def test_property_purging_a_never_touches_b(tmp_path: Path, a: list[str], b: list[str], counter: int) -> None:
    cache = fast_cache(tmp_path, f"r{counter}")
    for text in a:
        cache.store(request(text, repo="a"), completion(text))
    for text in b:
        cache.store(request(text, repo="b"), completion(text))
    before = cache.stats("b").entries
    cache.purge("a")
    assert cache.stats("a").entries == 0 and cache.stats("b").entries == before
    for text in b:
        assert cache.lookup(request(text, repo="b"), count=False).hit is not None
    cache.close()


class ScriptedDecision:
    """Turns down every candidate whose prompt says 'decoy'; records what it was asked to score."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.batches: list[int] = []  # how many candidates each call scored

    def tokens(self, states: np.ndarray) -> None:
        return None

    def shipped_thresholds(self) -> dict[float, float]:
        return {}

    def score(self, query: Encoded, candidates: list[Encoded], similarities) -> np.ndarray:
        self.asked += [c.text for c in candidates]
        self.batches.append(len(candidates))
        return np.array([0.0 if "decoy" in c.text else 1.0 for c in candidates])


def _scripted_lookup(
    settings: Settings, clock: Clock, top_n: int, floor: float, stored: list[str], asked: str
) -> tuple[Lookup, ScriptedDecision]:
    """Store ``stored`` (each answered with its own text) in a cache deciding by :class:`ScriptedDecision`
    at threshold 0.5, then look ``asked`` up; returns the lookup and the decision's record."""
    decision = ScriptedDecision()
    settings = settings.model_copy(update={"decision_top_n": top_n, "decision_min_similarity": floor})
    cache = SemanticCache(settings, embedder=HashEmbedder(), decision=decision, clock=clock)
    cache.start()
    cache.thresholds.save(GLOBAL, settings.false_hit_budget, 0.5, pairs=10)
    for prompt in stored:
        cache.store(request(prompt), completion(prompt))
    found = cache.lookup(request(asked))
    cache.close()
    return found, decision


@pytest.mark.parametrize("top_n, expect_hit", [(1, False), (2, True)])
def test_the_first_candidate_that_reaches_the_threshold_is_served_best_first(
    settings: Settings, clock: Clock, top_n: int, expect_hit: bool
) -> None:
    stored = ["reverse a list in python decoy", "reverse a list in python please now"]
    found, decision = _scripted_lookup(settings, clock, top_n, 0.3, stored, "reverse a list in python")
    assert decision.asked[0] == "reverse a list in python decoy"  # the more similar one goes first
    assert len(decision.asked) == top_n
    assert (found.hit is not None) == expect_hit
    if expect_hit:
        assert found.hit.entry.prompt == "reverse a list in python please now"


def test_a_hit_on_the_most_similar_candidate_scores_no_other(settings: Settings, clock: Clock) -> None:
    stored = ["reverse a list in python please", "reverse a list in python decoy now"]
    found, decision = _scripted_lookup(settings, clock, 2, 0.3, stored, "reverse a list in python")
    assert found.hit is not None and found.hit.entry.prompt == "reverse a list in python please"
    assert decision.asked == ["reverse a list in python please"]


def test_after_a_first_miss_the_rest_are_scored_together_and_the_most_similar_hit_served(
    settings: Settings, clock: Clock
) -> None:
    good = "reverse a list in python right now please"
    stored = ["reverse a list in python decoy", "reverse a list in python decoy too", good]
    found, decision = _scripted_lookup(settings, clock, 4, 0.1, stored, "reverse a list in python")
    assert decision.asked == [
        "reverse a list in python decoy",  # the most similar, alone
        "reverse a list in python decoy too",  # then the rest, together
        good,
    ]
    assert decision.batches == [1, 2]
    assert found.hit is not None and found.hit.entry.prompt == good
