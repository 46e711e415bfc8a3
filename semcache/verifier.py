"""The hit decision: given a request and a retrieved candidate, is the cached answer right for it?

The seam is :class:`Verifier`. Today the only implementation applies a cosine threshold; a trained,
calibrated verifier plugs in here (registered in :data:`VERIFIERS`) without touching the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from semcache.store import Entry


@dataclass(frozen=True)
class DecisionPolicy:
    """The operator's (or the request's) strictness for one lookup."""

    min_similarity: float


@dataclass(frozen=True)
class Decision:
    """The verdict on one candidate: ``score`` is what was compared with the threshold."""

    hit: bool
    score: float


class Verifier(Protocol):
    """Decides hit or miss for one (request, candidate) pair."""

    def prefilter(self, policy: DecisionPolicy) -> float:
        """The cosine below which no candidate can hit, so the search can stop early."""
        ...

    def decide(self, prompt: str, candidate: Entry, similarity: float, policy: DecisionPolicy) -> Decision:
        """Whether ``candidate``'s answer serves ``prompt``."""
        ...


class CosineVerifier:
    """A hit when the cosine similarity reaches ``policy.min_similarity``."""

    def prefilter(self, policy: DecisionPolicy) -> float:
        """Candidates below the threshold can never hit."""
        return policy.min_similarity

    def decide(self, prompt: str, candidate: Entry, similarity: float, policy: DecisionPolicy) -> Decision:
        """Compare the cosine with the threshold."""
        return Decision(hit=similarity >= policy.min_similarity, score=similarity)


VERIFIERS: dict[str, Callable[[], Verifier]] = {"cosine": CosineVerifier}


def make_verifier(name: str) -> Verifier:
    """Build the verifier registered under ``name``."""
    try:
        return VERIFIERS[name]()
    except KeyError:
        raise ValueError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}") from None
