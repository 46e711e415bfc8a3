"""SemanticCache: lookup / store / purge / feedback / stats, composed from the pieces beside it.

All methods are synchronous and thread-safe; the HTTP layer calls them from worker threads so the
event loop never waits on embedding, FAISS or SQLite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import threadpoolctl

from semcache.cache.backends import open_backend
from semcache.cache.calibrator import Calibrator
from semcache.cache.counters import Counters
from semcache.cache.health import WriteHealth
from semcache.cache.lookups import CacheHit, Lookup, NearMiss, is_cacheable, token_count, usage_problem
from semcache.cache.purges import Purges
from semcache.cache.search import SemanticSearch, uncalibrated
from semcache.config import Settings
from semcache.decision import Decision, DecisionPolicy, Encoded, Thresholds, make_decision
from semcache.embedding import DIM, Embedder, MicroBatcher, SentenceTransformerEmbedder
from semcache.errors import Conflict, InvalidRequest, NotFound, StoreError
from semcache.keys import CacheRequest
from semcache.store.labels import REPORT, Label, LabelStore
from semcache.store.records import GLOBAL, Entry, NewEntry, RepoStats
from semcache.store.sqlite import Store

__all__ = ["CacheHit", "Lookup", "NearMiss", "SemanticCache", "is_cacheable"]

log = logging.getLogger(__name__)
LOOKUPS = "lookups"  # the kind of store access a failed lookup is recorded as (WriteHealth)


class SemanticCache:
    """A per-repo semantic cache over a store and its vector search (SQLite + FAISS, or PostgreSQL +
    pgvector: see :mod:`semcache.cache.backends`)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        decision: Decision | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        embedder = embedder or SentenceTransformerEmbedder(
            settings.model_dir,
            settings.embedding_backend,
            threads=settings.embedding_threads,
            precision=settings.embedding_precision,
        )
        self._batcher = MicroBatcher(
            embedder, settings.embed_max_batch, settings.embed_max_wait_ms / 1000, settings.embed_workers
        )
        self._store, self._indexes = open_backend(settings, getattr(embedder, "dim", DIM))
        self._decision = decision or make_decision(settings.decision, settings.decision_dir)
        self.calibrator = Calibrator(self._store, self._decision, settings, clock)
        self._purges = Purges(self._store, self._indexes, clock, on_finished=self.calibrator.forget)
        self.health = WriteHealth()
        self.counters = Counters(self._store, self.health)
        self._search = SemanticSearch(
            self._store,
            self._indexes,
            self._decision,
            lambda text: self._encode(text)[1],
            settings.top_k,
            settings.decision_top_n,
        )

    @property
    def database(self) -> Store:
        """The store, for the tables kept beside the entries (keys, the admin log)."""
        return self._store

    @property
    def decision_model(self) -> Decision:
        """The hit decision in use."""
        return self._decision

    @property
    def thresholds(self) -> Thresholds:
        """Tuned and shipped thresholds (``semcache tune`` writes here)."""
        return self.calibrator.thresholds

    @property
    def labels(self) -> LabelStore:
        """Labels from live traffic and the audit's counters."""
        return self.calibrator.labels

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
        self.counters.start()
        repos = self._indexes.load_all()
        self.calibrator.load()
        log.info("cache ready: %d repos, decision %s", len(repos), self._decision.model_id)
        for other in self.thresholds.orphaned():
            log.warning(
                "thresholds tuned for %s are not used by %s; run `semcache tune` again",
                other,
                self._decision.model_id,
            )
        if not self.decision()["semantic_hits"]:
            log.warning(
                "no threshold of the %s decision certifies false_hit_budget %s: only exact hits will be "
                "served until `semcache tune` fits one (or a request asks for a budget that is certified)",
                self._decision.name,
                self.settings.false_hit_budget,
            )

    def close(self) -> None:
        """Stop background purges, persist changed indexes and release resources."""
        self._purges.stop()
        self.counters.stop()
        self._indexes.save_dirty()
        self._batcher.close()
        self._store.close()

    def sweep(self) -> int:
        """Remove expired entries from store and indexes, give each index the structure its size
        calls for (exact or HNSW, see :meth:`IndexSet.maintain`), then persist changed indexes."""
        with self._indexes.lock:
            removed = self._store.expire(self._clock())
            expired = self.labels.expire(self._clock())
            for repo, ids in removed.items():
                self._indexes.get(repo).remove(ids)
        self._indexes.maintain()
        self._indexes.save_dirty()
        # Fits follow their expired labels (a repo being purged has none to follow).
        self.calibrator.refit_fitted([repo for repo in expired if repo not in self._purges])
        return sum(len(ids) for ids in removed.values())

    # -- lookup --------------------------------------------------------------------------------

    def check(self, request: CacheRequest) -> None:
        """Refuse per-request options the settings do not allow (before any upstream call)."""
        ttl = request.options.ttl_s
        if ttl is not None and ttl > self.settings.max_ttl_s:
            raise InvalidRequest(f"semcache.ttl_s {ttl} is above the limit of {self.settings.max_ttl_s}")

    def policy(self, request: CacheRequest) -> DecisionPolicy:
        """The decision policy for a request, from its false-hit budget and its repo's calibration (see
        :class:`~semcache.cache.calibrator.Calibrator`); a request's ``min_similarity`` overrides the cosine
        floor (and, for the cosine decision without an online fit, the threshold)."""
        budget = request.options.false_hit_budget or self.settings.false_hit_budget
        return self.calibrator.policy(request.repo, budget, request.options.min_similarity)

    def decision(self, repo: str = GLOBAL) -> dict[str, Any]:
        """How a request with the default budget is decided in ``repo``: decision, budget, threshold
        (None when no threshold certifies that budget, so only exact hits are served), where it came
        from, and what the repo's labels say of it."""
        self.counters.flush()  # the audit's counters, as of now
        return self.calibrator.describe(repo)

    def audit_rate(self, repo: str) -> float:
        """The share of a repo's semantic hits audited (0: no audit, no online calibration)."""
        return self.calibrator.audit_rate(repo)

    def lookup(self, request: CacheRequest, count: bool = True) -> Lookup:
        """Find a cached answer for ``request``: exact key first, then the semantic search. Refuses
        per-request options the settings do not allow, before any upstream call (see :meth:`check`).
        A store that cannot be read (a database outage) makes it a miss: the answer goes upstream and is
        not cached, and ``/healthz`` says why, until a lookup succeeds again."""
        self.check(request)
        try:
            found = self._lookup(request, count)
        except StoreError as exc:
            self.health.failed(LOOKUPS, exc)
            return Lookup(hit=None, store_down=True)
        self.health.ok(LOOKUPS)
        return found

    def _lookup(self, request: CacheRequest, count: bool) -> Lookup:
        # A miss carries the repo's purge epoch, read before its answer is asked for: a purge that
        # finishes after this point is final for it. Hits need none, so they read none.
        if request.options.no_cache or not request.cacheable or request.repo in self._purges:
            return Lookup(hit=None, epoch=self._store.purge_epoch(request.repo))
        if self._indexes.sync_external():
            self.thresholds.refresh()
        now = self._clock()
        entry = self._store.get_exact(request.exact_key, now)
        if entry is not None:
            return Lookup(self._record(CacheHit(entry, "exact", 1.0, 1.0), count, now))
        vector, tokens = self._encode(request.prompt)
        policy = self.policy(request)
        hit, near = self._semantic(request, vector, Encoded(request.prompt, tokens), policy, now)
        if hit is not None:
            return Lookup(self._record(hit, count, now), vector, tokens, near=near)
        if count:
            self.counters.miss(request.repo)
        epoch = self._store.purge_epoch(request.repo)
        return Lookup(None, vector, tokens, uncalibrated=uncalibrated(policy), near=near, epoch=epoch)

    def _encode(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The one embedding pass: the text's vector and the decision's form of its token states."""
        vector, states = self._batcher.embed_states(text)
        return vector, None if states is None else self._decision.tokens(states)

    def _record(self, hit: CacheHit, count: bool, now: float) -> CacheHit:
        if count:  # in memory: counting never delays a hit
            self.counters.hit(hit.entry, hit.kind, now)
        return hit

    def _semantic(
        self, request: CacheRequest, vector: np.ndarray, query: Encoded, policy: DecisionPolicy, now: float
    ) -> tuple[CacheHit | None, NearMiss | None]:
        # Nothing calibrated this strict: no candidate can hit; an audited repo still labels its near
        # misses (its labels are how it may become calibrated).
        if uncalibrated(policy) and not self.audit_rate(request.repo):
            return None, None
        return self._search.run(request, vector, query, policy, now)

    # -- store ---------------------------------------------------------------------------------

    def store(
        self,
        request: CacheRequest,
        completion: dict[str, Any],
        embedding: np.ndarray | None = None,
        model: str | None = None,
        tokens: np.ndarray | None = None,
        epoch: int | None = None,
    ) -> int | None:
        """Store an upstream answer if it may be cached; returns the new entry id or None.

        ``model`` names the model that answered (for pricing savings); default: the completion's.
        ``epoch`` is the repo's purge epoch at lookup (:attr:`Lookup.epoch`): if a purge finished since,
        the answer is not stored.
        """
        if request.options.no_store or not request.cacheable or not is_cacheable(completion):
            return None
        if self.health.failing(LOOKUPS):  # the store is down: don't wait on it again for this answer
            return None
        if request.repo in self._purges:
            return None
        with self.health.guard("an upstream answer"):  # the client gets it anyway, uncached
            return self._insert(request, completion, embedding, model, tokens, epoch)
        return None

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
        if problem := usage_problem(completion.get("usage")):
            raise InvalidRequest(problem)
        self.check(request)
        new_id = self._insert(request, completion, None, None, None)
        assert new_id is not None  # no epoch given: never refused
        return new_id

    def _insert(
        self,
        request: CacheRequest,
        completion: dict[str, Any],
        embedding: np.ndarray | None,
        model: str | None,
        tokens: np.ndarray | None,
        epoch: int | None = None,
    ) -> int | None:
        if embedding is None:
            embedding, tokens = self._encode(request.prompt)
        usage = completion.get("usage")
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
            prompt_tokens=token_count(usage, "prompt_tokens"),
            completion_tokens=token_count(usage, "completion_tokens"),
            context_files=[(f.path, f.sha) for f in request.options.context_files],
            tokens=tokens,
            tokens_model=None if tokens is None else self._decision.model_id,
        )
        with self._indexes.lock:
            index = self._indexes.get(request.repo)
            new_id, replaced = self._store.insert(entry, now, epoch)
            if new_id is None:  # the repo was purged while its answer was on the way
                return None
            index.remove(replaced)
            index.add(np.array([new_id]), embedding.reshape(1, -1))
            self.counters.flush()  # eviction orders by the last hit: let it see the latest
            index.remove(self._store.evict_over(request.repo, self.settings.max_entries_per_repo))
        return new_id

    # -- management ----------------------------------------------------------------------------

    def get(self, repo: str, entry_id: int) -> Entry:
        """One entry, or :class:`NotFound`."""
        self.counters.flush()  # its hit count includes the last second's hits
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
        self.calibrator.forget(repo)
        self.counters.forget(repo)
        return self._purges.run(repo, batch)

    def purge_in_background(self, repo: str) -> int:
        """Begin a purge and finish it in a background thread (a restart finishes it too); returns
        how many entries the repo held."""
        self.calibrator.forget(repo)
        self.counters.forget(repo)
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
        """Evict an entry that was served wrongly; keep the pair as a labelled negative (for `tune`) and
        as a label of the repo's online calibration, scored as the lookup scored it."""
        entry = self.get(repo, entry_id)
        feedback_id = self._store.add_feedback(entry, prompt, similarity, label=0)
        if self.audit_rate(repo) > 0:
            self.add_label(repo, entry, self._rescore(entry, prompt), False, 1.0, "feedback", REPORT)
        self.delete(repo, entry_id)
        return feedback_id

    def _rescore(self, entry: Entry, prompt: str) -> NearMiss:
        vector, tokens = self._encode(prompt)
        _, stored = self._store.vectors_of(entry.repo, np.array([entry.id]))
        similarity = float(stored[0] @ vector) if len(stored) else 1.0
        candidate_tokens = self._search.tokens(entry) if tokens is not None else None
        score = self._decision.score(
            Encoded(prompt, tokens), [Encoded(entry.prompt, candidate_tokens)], np.array([similarity])
        )
        return NearMiss(entry.id, float(score[0]), similarity)

    def add_label(
        self, repo: str, entry: Entry, near: NearMiss, right: bool, weight: float, source: str, judge: str
    ) -> None:
        """Record a lookup ``judge`` judged, for the repo's online calibration (nothing while the repo is
        purged)."""
        if repo in self._purges:
            return
        label = Label(
            repo,
            entry.id,
            self._decision.model_id,
            near.score,
            near.similarity,
            int(right),
            weight,
            source,
            entry.expires_at,
            judge,
        )
        self.calibrator.add_label(label)

    def entry_or_none(self, repo: str, entry_id: int) -> Entry | None:
        """One entry, or None when it is gone."""
        return self._store.get(repo, entry_id)

    def feedback(self, repo: str) -> list[dict[str, Any]]:
        """The labelled pairs kept for a repo."""
        return self._store.feedback(repo)

    def stats(self, repo: str) -> RepoStats:
        """Counters for one repo (while it is purged, the rows left, as the purge counts them)."""
        self.counters.flush()  # what is read includes the last second's counts
        return self._store.stats(repo, entries=self._purges.remaining(repo))

    def repos(self) -> dict[str, int]:
        """Every known repo with its entry count."""
        self.counters.flush()
        return self._store.repos()
