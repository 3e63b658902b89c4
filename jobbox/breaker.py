"""The Redis circuit breaker (docs/explanation/invariants.md, invariant 6:
an open breaker stops hammering Redis).

Closed: calls go to Redis. A failure or timeout (BREAKER_FAILURE_THRESHOLD in a row) opens
it: for BREAKER_OPEN_SECONDS every caller is told "Redis unavailable" at once, without
touching the network, and answers from the database (bounded by the outage copies). Then
one caller's real call is the probe (half-open): success closes the breaker, failure opens
it again. A probe that never reports (its thread died) is replaced after the same interval.
One breaker per Redis URL, per process; `jobbox.client` owns them.
"""

import logging
import threading
import time
from collections.abc import Callable
from enum import IntEnum

from jobbox.metrics import REDIS_BREAKER_OPENS, REDIS_BREAKER_STATE

logger = logging.getLogger(__name__)


# Called (outside the lock, on the caller's thread) with the seconds the breaker stayed open
# whenever a probe closes it: state that Redis lost or missed meanwhile can be repaired.
_recovery_listeners: list[Callable[[float], None]] = []


def on_recovered(listener: Callable[[float], None]) -> None:
    """Run `listener(open_seconds)` each time a breaker closes after being open."""
    if listener not in _recovery_listeners:
        _recovery_listeners.append(listener)


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0
        self._retry_at = 0.0
        self._opened_at: float | None = None

    @property
    def state(self) -> State:
        return self._state

    def allow(self) -> bool:
        """May this call go to Redis? While open: no, until it is time for one probe."""
        if self._state is State.CLOSED:
            return True
        with self._lock:
            if self._state is State.CLOSED:
                return True
            now = self._clock()
            if now < self._retry_at:
                return False
            self._set(State.HALF_OPEN)
            self._retry_at = now + self.open_seconds  # the next probe, should this one vanish
            return True

    def record_success(self) -> None:
        if self._state is State.CLOSED and self._failures == 0:
            return  # the hot path: no lock
        open_seconds = None
        with self._lock:
            if self._state is State.OPEN:
                return  # a call that began before the failure proves nothing; wait for a probe
            if self._state is State.HALF_OPEN:
                logger.warning("jobbox: Redis answers again; circuit breaker closed")
                if self._opened_at is not None:
                    open_seconds = self._clock() - self._opened_at
                    self._opened_at = None
            self._failures = 0
            self._set(State.CLOSED)
        if open_seconds is not None:
            for listener in list(_recovery_listeners):
                try:
                    listener(open_seconds)
                except Exception:  # a listener's failure must not fail the request probing
                    logger.exception("jobbox: breaker recovery listener failed")

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            if self._state is State.HALF_OPEN or self._failures >= self.failure_threshold:
                if self._state is State.CLOSED:
                    self._opened_at = self._clock()
                    REDIS_BREAKER_OPENS.inc()
                    logger.warning(
                        "jobbox: Redis failed (%s); circuit breaker open, answering from the "
                        "database for %.1f s before probing", reason, self.open_seconds,
                    )
                self._retry_at = self._clock() + self.open_seconds
                self._set(State.OPEN)

    def _set(self, state: State) -> None:
        self._state = state
        REDIS_BREAKER_STATE.set(int(state))
