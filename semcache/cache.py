"""SemanticCache: lookup / store / purge / feedback / stats, composed from the pieces beside it.

All methods are synchronous and thread-safe; the HTTP layer calls them from worker threads so the
event loop never waits on embedding, FAISS or SQLite.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import threadpoolctl

from semcache.config import Settings
from semcache.decision import Decision, DecisionPolicy, Encoded, Thresholds, make_decision
from semcache.embedding import DIM, Embedder, MicroBatcher, SentenceTransformerEmbedder
from semcache.errors import Conflict, InvalidRequest, NotFound
from semcache.index import AnnParams, IndexSet, Neighbor
from semcache.keys import CacheRequest
from semcache.purges import Purges
from semcache.records import GLOBAL, Entry, NewEntry, RepoStats
from semcache.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheHit:
    """A cached answer judged right for the request."""

    entry: Entry
    kind: Literal["exact", "semantic"]
    similarity: float
    score: float


@dataclass(frozen=True)
class Lookup:
    """The outcome of a lookup; ``embedding`` and ``tokens`` (the decision's stored form of the prompt's
    token states) are kept so a miss can be stored without embedding it again."""

    hit: CacheHit | None
    embedding: np.ndarray | None = None
    tokens: np.ndarray | None = None
    # True when the request's false-hit budget is stricter than any calibrated one: no semantic hit
    # could be served, and the response says so.
    uncalibrated: bool = False


def is_cacheable(completion: dict[str, Any]) -> bool:
    """Only complete, non-empty, non-tool-call answers are stored."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        message = choice.get("message") or {}
        content = message.get("content")
        if choice.get("finish_reason") != "stop" or message.get("tool_calls") or message.get("function_call"):
            return False
        if not isinstance(content, str) or not content.strip():
            return False
    return True


class SemanticCache:
    """A per-repo semantic cache over a SQLite store and FAISS indexes."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        decision: Decision | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._store = Store(settings.db_path)
        embedder = embedder or SentenceTransformerEmbedder(
            settings.model_dir,
            settings.embedding_backend,
            threads=settings.embedding_threads,
            precision=settings.embedding_precision,
        )
        self._batcher = MicroBatcher(
            embedder, settings.embed_max_batch, settings.embed_max_wait_ms / 1000, settings.embed_workers
        )
        ann = AnnParams.of(settings)
        self._indexes = IndexSet(self._store, settings.index_dir, getattr(embedder, "dim", DIM), ann)
        self._decision = decision or make_decision(settings.decision, settings.decision_dir)
        # Tuned thresholds are kept per model: one fitted for another model is never applied to this one.
        self.thresholds = Thresholds(
            self._store, self._decision.model_id, self._decision.shipped_thresholds()
        )
        self._purges = Purges(self._store, self._indexes, clock)

    @property
    def decision_model(self) -> Decision:
        """The hit decision in use."""
        return self._decision

    @property
    def embedder(self) -> Embedder:
        """The embedding model behind the cache (thread-safe ``encode``)."""
        return self._batcher.embedder

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the embedding model and check every repo's index against the store."""
        load = getattr(self._batcher.embedder, "load", None)
        if load is not None:
            load()
        # The decision's matrices are small and many request threads score at once: OpenBLAS's own
        # threads only spin against them (measured, 8 threads on 2 cores: 114 lookups/s, 435 with one).
        threadpoolctl.threadpool_limits(1, user_api="blas")
        self._purges.resume()  # first, so a repo being purged is not indexed again
        repos = self._indexes.load_all()
        log.info("cache ready: %d repos, decision %s", len(repos), self._decision.model_id)
        for other in self.thresholds.orphaned():
            log.warning("thresholds tuned for %s are not used by %s; run `semcache tune` again",
                        other, self._decision.model_id)  # fmt: skip
        if not self.decision()["semantic_hits"]:
            log.warning(
                "no threshold of the %s decision certifies false_hit_budget %s: only exact hits will be "
                "served until `semcache tune` fits one (or a request asks for a budget that is certified)",
                self._decision.name, self.settings.false_hit_budget,
            )  # fmt: skip

    def close(self) -> None:
        """Stop background purges, persist changed indexes and release resources."""
        self._purges.stop()
        self._indexes.save_dirty()
        self._batcher.close()
        self._store.close()

    def sweep(self) -> int:
        """Remove expired entries from store and indexes, give each index the structure its size
        calls for (exact or HNSW, see :meth:`IndexSet.maintain`), then persist changed indexes."""
        with self._indexes.lock:
            removed = self._store.expire(self._clock())
            for repo, ids in removed.items():
                self._indexes.get(repo).remove(ids)
        self._indexes.maintain()
        self._indexes.save_dirty()
        return sum(len(ids) for ids in removed.values())

    # -- lookup --------------------------------------------------------------------------------

    def check(self, request: CacheRequest) -> None:
        """Refuse per-request options the settings do not allow (before any upstream call)."""
        ttl = request.options.ttl_s
        if ttl is not None and ttl > self.settings.max_ttl_s:
            raise InvalidRequest(f"semcache.ttl_s {ttl} is above the limit of {self.settings.max_ttl_s}")

    def policy(self, request: CacheRequest) -> DecisionPolicy:
        """The decision policy for a request, from its false-hit budget and its repo's tuned thresholds.

        A request's ``min_similarity`` overrides the cosine floor (and, for the cosine decision, the
        threshold). Where no threshold was ever calibrated, the cosine decision falls back to the
        ``min_similarity`` setting and a learned one never hits.
        """
        budget = request.options.false_hit_budget or self.settings.false_hit_budget
        return self._policy(request.repo, budget, request.options.min_similarity)

    def _policy(self, repo: str, budget: float, floor: float | None = None) -> DecisionPolicy:
        tuned = self.thresholds.resolve(repo, budget)
        if self._decision.name == "cosine":
            threshold = floor or (tuned if tuned is not None else self.settings.min_similarity)
            return DecisionPolicy(min_similarity=threshold, threshold=threshold)
        return DecisionPolicy(
            min_similarity=floor or self.settings.decision_min_similarity,
            threshold=tuned if tuned is not None else math.inf,
        )

    def decision(self, repo: str = GLOBAL) -> dict[str, Any]:
        """How a request with the default budget is decided in ``repo``: decision, budget, threshold
        (None when no threshold certifies that budget, so only exact hits are served)."""
        budget = self.settings.false_hit_budget
        threshold = self._policy(repo, budget).threshold
        return {"decision": self._decision.name, "model": self._decision.model_id, "false_hit_budget": budget,
                "threshold": None if math.isinf(threshold) else threshold,
                "semantic_hits": not math.isinf(threshold),
                "calibrated_budgets": self.thresholds.budgets(repo)}  # fmt: skip

    def lookup(self, request: CacheRequest, count: bool = True) -> Lookup:
        """Find a cached answer for ``request``: exact key first, then the semantic search."""
        if request.options.no_cache or not request.cacheable or request.repo in self._purges:
            return Lookup(hit=None)
        if self._indexes.sync_external():
            self.thresholds.refresh()
        now = self._clock()
        entry = self._store.get_exact(request.exact_key, now)
        if entry is not None:
            return Lookup(self._record(CacheHit(entry, "exact", 1.0, 1.0), count, now))
        vector, tokens = self._encode(request.prompt)
        policy = self.policy(request)
        hit = self._semantic(request, vector, Encoded(request.prompt, tokens), policy, now)
        if hit is not None:
            return Lookup(self._record(hit, count, now), vector, tokens)
        if count:
            self._store.record_miss(request.repo)
        return Lookup(None, vector, tokens, uncalibrated=math.isinf(policy.threshold))

    def _encode(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The one embedding pass: the text's vector and the decision's form of its token states."""
        vector, states = self._batcher.embed_states(text)
        return vector, None if states is None else self._decision.tokens(states)

    def _record(self, hit: CacheHit, count: bool, now: float) -> CacheHit:
        if count:
            self._store.record_hit(hit.entry, hit.kind, now)
        return hit

    def _semantic(
        self, request: CacheRequest, vector: np.ndarray, query: Encoded, policy: DecisionPolicy, now: float
    ) -> CacheHit | None:
        if math.isinf(policy.threshold):  # nothing calibrated this strict: no candidate can hit
            return None
        floor = policy.min_similarity
        top_k = self.settings.top_k
        index = self._indexes.get(request.repo)
        wide = max(4 * top_k, 32)
        neighbors = index.search(vector, wide)
        candidates = self._in_scope(request, neighbors, now)
        # The wide search ranks all scopes; if this scope may have more candidates above the floor
        # further down, search again restricted to this scope's ids.
        if len(candidates) < top_k and len(neighbors) == wide and neighbors[-1].similarity >= floor:
            allowed = self._store.scope_ids(request.repo, request.scope_key, now)
            candidates = self._in_scope(request, index.search(vector, top_k, allowed), now)
        # Most similar first: the first candidate whose score reaches the threshold is served (the
        # thresholds are calibrated by replaying streams with this very rule). Only these few entries
        # are read whole.
        chosen = [n for n in candidates if n.similarity >= floor][: self.settings.decision_top_n]
        entries = self._store.get_many([n.id for n in chosen])
        chosen = [n for n in chosen if n.id in entries]  # an entry deleted since the scope check is gone
        if not chosen:
            return None
        # A decision that reads no token states (the cosine) needs none of the candidates'.
        tokens = self._candidate_tokens([entries[n.id] for n in chosen]) if query.tokens is not None else {}
        # Most similar first, one at a time: a hit on the first candidate pays for one score.
        for neighbor in chosen:
            candidate = Encoded(entries[neighbor.id].prompt, tokens.get(neighbor.id))
            score = float(self._decision.score(query, [candidate], np.array([neighbor.similarity]))[0])
            if score >= policy.threshold:
                return CacheHit(entries[neighbor.id], "semantic", neighbor.similarity, score)
        return None

    def _candidate_tokens(self, entries: list[Entry]) -> dict[int, np.ndarray]:
        """The candidates' stored token states; those made by another decision model (or none, as for
        entries stored under the cosine decision) are made again from the prompt and kept."""
        model = self._decision.model_id
        tokens = self._store.tokens([e.id for e in entries], model)
        stale = [e for e in entries if e.id not in tokens]
        fresh = {e.id: t for e in stale if (t := self._encode(e.prompt)[1]) is not None}
        if fresh:
            self._store.set_tokens(fresh, model)
            tokens.update(fresh)
        return tokens

    def _in_scope(self, request: CacheRequest, neighbors: list[Neighbor], now: float) -> list[Neighbor]:
        live = self._store.in_scope([n.id for n in neighbors], request.scope_key, now)
        return [n for n in neighbors if n.id in live]

    # -- store ---------------------------------------------------------------------------------

    def store(
        self,
        request: CacheRequest,
        completion: dict[str, Any],
        embedding: np.ndarray | None = None,
        model: str | None = None,
        tokens: np.ndarray | None = None,
    ) -> int | None:
        """Store an upstream answer if it may be cached; returns the new entry id or None.

        ``model`` names the model that answered (for pricing savings); default: the completion's.
        """
        if request.options.no_store or not request.cacheable or not is_cacheable(completion):
            return None
        if request.repo in self._purges:
            return None
        return self._insert(request, completion, embedding, model, tokens)

    def put(self, request: CacheRequest, completion: dict[str, Any]) -> int:
        """Store an answer sent directly by an operator; refuses answers that may not be cached."""
        if not request.cacheable:
            raise InvalidRequest("the last user message has no text to cache on")
        if request.repo in self._purges:
            raise Conflict(f"repo {request.repo} is being purged; store into it once the purge is done")
        if not is_cacheable(completion):
            raise InvalidRequest(
                "response must be a chat completion whose choices all finished with 'stop' and hold "
                "non-empty text content (no tool calls)"
            )
        return self._insert(request, completion, None, None, None)

    def _insert(
        self,
        request: CacheRequest,
        completion: dict[str, Any],
        embedding: np.ndarray | None,
        model: str | None,
        tokens: np.ndarray | None,
    ) -> int:
        self.check(request)
        if embedding is None:
            embedding, tokens = self._encode(request.prompt)
        usage = completion.get("usage") or {}
        now = self._clock()
        entry = NewEntry(
            repo=request.repo,
            scope_key=request.scope_key,
            exact_key=request.exact_key,
            prompt=request.prompt,
            response=completion,
            model=model or str(completion.get("model") or request.model),
            embedding=embedding,
            expires_at=now + (request.options.ttl_s or self.settings.default_ttl_s),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            context_files=[(f.path, f.sha) for f in request.options.context_files],
            tokens=tokens,
            tokens_model=None if tokens is None else self._decision.model_id,
        )
        with self._indexes.lock:
            index = self._indexes.get(request.repo)
            new_id, replaced = self._store.insert(entry, now)
            index.remove(replaced)
            index.add(np.array([new_id]), embedding.reshape(1, -1))
            index.remove(self._store.evict_over(request.repo, self.settings.max_entries_per_repo))
        return new_id

    # -- management ----------------------------------------------------------------------------

    def get(self, repo: str, entry_id: int) -> Entry:
        """One entry, or :class:`NotFound`."""
        entry = self._store.get(repo, entry_id)
        if entry is None:
            raise NotFound(f"no entry {entry_id} in repo {repo!r}")
        return entry

    def delete(self, repo: str, entry_id: int) -> None:
        """Delete one entry, or raise :class:`NotFound`."""
        with self._indexes.lock:
            if not self._store.delete(repo, entry_id):
                raise NotFound(f"no entry {entry_id} in repo {repo!r}")
            self._indexes.get(repo).remove([entry_id])

    def purge(self, repo: str, batch: int = 500) -> int:
        """Remove a repo entirely (entries, counters, feedback, index file) and return how many entries
        went. Other repos are untouched. From the moment it begins the repo serves and stores nothing;
        its rows go in short batches, so other repos wait for one batch at most, not the whole purge (in
        one transaction under the index lock, a 100 k-entry purge stalled every repo for 2.3 s)."""
        return self._purges.run(repo, batch)

    def purge_in_background(self, repo: str) -> int:
        """Begin a purge and finish it in a background thread (a restart finishes it too); returns
        how many entries the repo held."""
        return self._purges.start(repo)

    def purging(self, repo: str) -> bool:
        """Whether a purge of the repo is under way."""
        return repo in self._purges

    def purge_context_file(self, repo: str, path: str) -> int:
        """Remove the entries of a repo that depended on a context file path."""
        with self._indexes.lock:
            ids = self._store.purge_context_file(repo, path)
            self._indexes.get(repo).remove(ids)
        return len(ids)

    def report_wrong_hit(self, repo: str, entry_id: int, prompt: str, similarity: float | None = None) -> int:
        """Evict an entry that was served wrongly and keep the pair as a labelled negative."""
        entry = self.get(repo, entry_id)
        feedback_id = self._store.add_feedback(entry, prompt, similarity, label=0)
        self.delete(repo, entry_id)
        return feedback_id

    def feedback(self, repo: str) -> list[dict[str, Any]]:
        """The labelled pairs kept for a repo."""
        return self._store.feedback(repo)

    def stats(self, repo: str) -> RepoStats:
        """Counters for one repo (while it is purged, the rows left, as the purge counts them)."""
        return self._store.stats(repo, entries=self._purges.remaining(repo))

    def repos(self) -> dict[str, int]:
        """Every known repo with its entry count."""
        return self._store.repos()
