"""Circuit breakers, one per model.

closed     calls flow; outcomes go into a sliding window of the last ``window`` calls. Once the window
           holds ``min_calls`` outcomes and the failure rate reaches ``failure_rate``, the breaker opens.
open       calls fail fast (the router goes straight to the fallback) for ``open_s`` seconds.
half_open  one probe call is let through; success closes the breaker (fresh window), failure reopens it.

Only failures that say something about the model's health count (timeouts, 429, 5xx); a 400 is the
request's fault and leaves the breaker alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from router.registry import BreakerPolicy


class BreakerState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state for stats and logs."""

    model: str
    state: BreakerState
    failures: int
    calls: int


class CircuitBreaker:
    """A failure-rate circuit breaker with a half-open probe."""

    def __init__(
        self, model: str, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = model
        self._policy = policy
        self._clock = clock
        self._window: deque[bool] = deque(maxlen=max(1, policy.window))
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cool-down has passed reads as half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._policy.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only one probe at a time is allowed."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded; a half-open probe's success closes the breaker."""
        if self.state is BreakerState.HALF_OPEN:
            self._close()
            return
        self._window.append(True)

    def record_failure(self) -> None:
        """A call failed in a way that counts against the model's health."""
        if self.state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._window.append(False)
        failures = self._window.count(False)
        if len(self._window) >= self._policy.min_calls and failures / len(self._window) >= (
            self._policy.failure_rate
        ):
            self._open()

    def release(self) -> None:
        """A permitted call ended without a verdict (e.g. a 400): free the half-open probe slot."""
        self._probe_in_flight = False

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's current state and window counts."""
        return BreakerSnapshot(self.model, self.state, self._window.count(False), len(self._window))

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._window.clear()
        self._probe_in_flight = False
