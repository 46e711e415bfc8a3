"""Circuit breaker state machine (pure unit tests with an injected clock)."""

from __future__ import annotations

from router import BreakerState, CircuitBreaker
from router.registry import BreakerPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_on_failure_rate_fails_fast_then_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", BreakerPolicy(window=4, min_calls=4, failure_rate=0.5, open_s=10), clock)
    for ok in (True, False, True):
        assert breaker.allow()
        breaker.record_success() if ok else breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # 1/3, and under min_calls
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # 2/4 = 0.5
    assert not breaker.allow()
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().calls == 0


def test_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", BreakerPolicy(window=2, min_calls=1, failure_rate=1.0, open_s=5), clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4
    assert not breaker.allow()


def test_released_probe_lets_the_next_one_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", BreakerPolicy(window=2, min_calls=1, failure_rate=1.0, open_s=1), clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()  # e.g. the probe got a 400, which says nothing about the model
    assert breaker.allow()
