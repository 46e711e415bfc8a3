"""Calling one model: retries with backoff (tenacity), the latency budget, and its circuit breaker.

A model is abandoned for its fallback when its attempts run out, when its latency budget
(``timeout_s``, counted across retries) runs out or would run out during the next backoff, when a
Retry-After asks for longer than the policy allows, or when its breaker is open. A non-retryable error
(400/401/403/404) is raised as is: the chain stops there.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from router.breaker import CircuitBreaker
from router.errors import RouterError, UpstreamError
from router.registry import ModelSpec, RetryPolicy

T = TypeVar("T")

OK = "ok"
BREAKER_OPEN = "breaker_open"
CONTEXT_TOO_SMALL = "context_too_small"
BUDGET_EXHAUSTED = "latency_budget_exhausted"
STREAM_BROKEN = "stream_broken"
# Outcomes of attempts that never reached the provider: not calls, so not in the ledger.
SKIPPED_OUTCOMES = frozenset({BREAKER_OPEN, CONTEXT_TOO_SMALL, BUDGET_EXHAUSTED})


@dataclass(frozen=True)
class Attempt:
    """One try at one model: what happened and how long it took."""

    model: str
    outcome: str
    latency_ms: float
    status: int | None = None
    error: str = ""

    @property
    def reached_provider(self) -> bool:
        """Whether this attempt was a real provider call (skips are not)."""
        return self.outcome not in SKIPPED_OUTCOMES


class ModelSkipped(RouterError):
    """A model was passed over without a usable answer; the chain moves on to its fallback."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable


class _RetryAfterOrBackoff:
    """Wait for the provider's Retry-After when it sent one, else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        backoff = self._policy.backoff_initial_s * 2 ** (state.attempt_number - 1)
        return min(self._policy.backoff_max_s, backoff) + self._rng.uniform(0, self._policy.jitter_s)


class _StopPolicy:
    """Stop retrying a model: attempts used up, budget would run out, or Retry-After too long."""

    def __init__(self, policy: RetryPolicy, deadline: float) -> None:
        self._policy = policy
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._policy.max_attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamError) and (exc.retry_after_s or 0.0) > self._policy.max_retry_after_s:
            return True
        return time.monotonic() + (state.upcoming_sleep or 0.0) >= self._deadline


async def call_model(
    spec: ModelSpec,
    breaker: CircuitBreaker,
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    attempts: list[Attempt],
    rng: random.Random,
) -> T:
    """Run ``operation`` against one model with retries; every try is appended to ``attempts``.

    Raises :class:`ModelSkipped` (breaker open / budget gone), a retryable :class:`UpstreamError` when
    the model's retries are exhausted, or a non-retryable one that should stop the chain.
    """
    deadline = time.monotonic() + spec.timeout_s

    async def one_try() -> T:
        if not breaker.allow():
            attempts.append(Attempt(spec.id, BREAKER_OPEN, 0.0, 503, "circuit breaker open"))
            raise ModelSkipped(f"circuit breaker of {spec.id} is open", BREAKER_OPEN)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            breaker.release()
            attempts.append(Attempt(spec.id, BUDGET_EXHAUSTED, 0.0, 504, "latency budget used up"))
            raise ModelSkipped(f"latency budget of {spec.id} used up", BUDGET_EXHAUSTED)
        return await _timed_try(spec, breaker, operation, attempts, remaining)

    retrying = AsyncRetrying(
        retry=retry_if_exception(_retryable),
        wait=_RetryAfterOrBackoff(policy, rng),
        stop=_StopPolicy(policy, deadline),
        reraise=True,
    )
    return await retrying(one_try)


async def _timed_try(
    spec: ModelSpec,
    breaker: CircuitBreaker,
    operation: Callable[[], Awaitable[T]],
    attempts: list[Attempt],
    remaining_s: float,
) -> T:
    started = time.monotonic()
    try:
        async with asyncio.timeout(remaining_s):
            result = await operation()
    except TimeoutError as exc:
        error = UpstreamError(
            f"{spec.id} exceeded its latency budget of {spec.timeout_s:g} s",
            status=504,
            retryable=True,
            kind="upstream_timeout",
        )
        _record_failure(spec, breaker, attempts, error, started)
        raise error from exc
    except UpstreamError as exc:
        _record_failure(spec, breaker, attempts, exc, started)
        raise
    breaker.record_success()
    attempts.append(Attempt(spec.id, OK, _ms_since(started), 200))
    return result


def _record_failure(
    spec: ModelSpec, breaker: CircuitBreaker, attempts: list[Attempt], exc: UpstreamError, started: float
) -> None:
    if exc.retryable:
        breaker.record_failure()
    else:
        breaker.release()
    attempts.append(Attempt(spec.id, exc.kind, _ms_since(started), exc.status, exc.message))


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
