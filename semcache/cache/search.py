"""The semantic half of a lookup: the repo's nearest entries, the live ones of the request's scope read
in one store query, then the hit decision, most similar first."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from semcache.cache.lookups import CacheHit, NearMiss
from semcache.decision import Decision, DecisionPolicy, Encoded
from semcache.index.sets import IndexSet, Neighbor
from semcache.keys import CacheRequest
from semcache.store.records import Entry
from semcache.store.sqlite import Store

# A text's token states in the decision's stored form (None from a decision that reads none).
TokensOf = Callable[[str], "np.ndarray | None"]
# One candidate: its neighbour in the index, its entry, its stored token states.
Candidate = tuple[Neighbor, Entry, "np.ndarray | None"]


class SemanticSearch:
    """Finds the cached answer the decision accepts for a request, if any."""

    def __init__(
        self,
        store: Store,
        indexes: IndexSet,
        decision: Decision,
        tokens_of: TokensOf,
        top_k: int,
        top_n: int,
    ) -> None:
        self._store = store
        self._indexes = indexes
        self._decision = decision
        self._tokens_of = tokens_of
        self._top_k = top_k
        self._top_n = top_n

    def run(
        self, request: CacheRequest, vector: np.ndarray, query: Encoded, policy: DecisionPolicy, now: float
    ) -> tuple[CacheHit | None, NearMiss | None]:
        """The hit (or None) and the best-scored candidate that was not served (a near miss)."""
        candidates = self.candidates(request, vector, policy.min_similarity, now)
        if not candidates:
            return None, None
        if query.tokens is not None:
            candidates = self._with_tokens(candidates)
        # The most similar candidate whose score reaches the threshold is served (thresholds are
        # calibrated by replaying streams with this very rule). The first is scored alone, so a hit on
        # it pays for one pair; the others, if it misses, in one call.
        best: tuple[float, NearMiss] | None = None
        for batch in (candidates[:1], candidates[1:]):
            if not batch:
                continue
            scores = self._decision.score(
                query,
                [Encoded(entry.prompt, tokens) for _, entry, tokens in batch],
                np.array([neighbor.similarity for neighbor, _, _ in batch]),
            )
            for (neighbor, entry, _), score in zip(batch, scores.tolist(), strict=True):
                combined = policy.combined(score, neighbor.similarity)
                near = NearMiss(neighbor.id, score, neighbor.similarity)
                if combined >= policy.threshold:
                    return CacheHit(entry, "semantic", neighbor.similarity, score), near
                if best is None or combined > best[0]:
                    best = (combined, near)
        return None, best[1] if best else None

    def candidates(
        self, request: CacheRequest, vector: np.ndarray, floor: float, now: float
    ) -> list[Candidate]:
        """Up to ``top_n`` live entries of the request's scope at or above the cosine ``floor``, most
        similar first, with their token states."""
        index = self._indexes.get(request.repo)
        wide = max(4 * self._top_k, 32)
        neighbors = index.search(vector, wide)
        found = self._live(request, [n for n in neighbors if n.similarity >= floor], now)
        # The wide search ranks all scopes; if this scope may have more candidates above the floor
        # further down, search again restricted to this scope's ids.
        if len(found) < self._top_n and len(neighbors) == wide and neighbors[-1].similarity >= floor:
            allowed = self._store.scope_ids(request.repo, request.scope_key, now)
            narrow = index.search(vector, self._top_k, allowed)
            found = self._live(request, [n for n in narrow if n.similarity >= floor], now)
        return found[: self._top_n]

    def _live(self, request: CacheRequest, neighbors: list[Neighbor], now: float) -> list[Candidate]:
        model = self._decision.model_id
        rows = self._store.candidates([n.id for n in neighbors], request.scope_key, now, model)
        return [(n, *rows[n.id]) for n in neighbors if n.id in rows]

    def _with_tokens(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates whose states another decision model made (or none, as for entries stored under
        the cosine decision) get them made again from the prompt, and kept."""
        fresh = {
            entry.id: made
            for _, entry, tokens in candidates
            if tokens is None and (made := self._tokens_of(entry.prompt)) is not None
        }
        if fresh:
            self._store.set_tokens(fresh, self._decision.model_id)
        return [(n, entry, fresh.get(entry.id, tokens)) for n, entry, tokens in candidates]

    def tokens(self, entry: Entry) -> np.ndarray | None:
        """One entry's token states for the decision in use, made again where stale."""
        stored = self._store.tokens([entry.id], self._decision.model_id).get(entry.id)
        if stored is not None:
            return stored
        made = self._tokens_of(entry.prompt)
        if made is not None:
            self._store.set_tokens({entry.id: made}, self._decision.model_id)
        return made


def uncalibrated(policy: DecisionPolicy) -> bool:
    """Whether no threshold certifies the policy's budget (only exact hits can be served)."""
    return math.isinf(policy.threshold)
