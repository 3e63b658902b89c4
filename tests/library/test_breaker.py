"""The Redis circuit breaker: opens on a failure, answers at once while open, probes to close."""

from jobbox.breaker import CircuitBreaker, State
from jobbox.metrics import REDIS_BREAKER_STATE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, threshold: int = 1) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, open_seconds=2.0, clock=clock)


def test_a_failure_opens_it_and_it_refuses_until_the_open_interval_ends():
    clock = Clock()
    b = breaker(clock)
    assert b.allow()
    b.record_failure("TimeoutError")
    assert b.state is State.OPEN
    assert REDIS_BREAKER_STATE._value.get() == 1
    clock.now += 1.9
    assert not b.allow()


def test_after_the_interval_exactly_one_probe_goes_and_its_success_closes_it():
    clock = Clock()
    b = breaker(clock)
    b.record_failure("ConnectionError")
    clock.now += 2.0
    assert b.allow()  # the probe
    assert b.state is State.HALF_OPEN
    assert not b.allow()  # everyone else still answers from the database
    b.record_success()
    assert b.state is State.CLOSED
    assert REDIS_BREAKER_STATE._value.get() == 0
    assert b.allow()


def test_a_failed_probe_opens_it_again_for_another_interval():
    clock = Clock()
    b = breaker(clock)
    b.record_failure("ConnectionError")
    clock.now += 2.0
    assert b.allow()
    b.record_failure("ConnectionError")
    assert b.state is State.OPEN
    clock.now += 1.0
    assert not b.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_interval():
    clock = Clock()
    b = breaker(clock)
    b.record_failure("ConnectionError")
    clock.now += 2.0
    assert b.allow()
    clock.now += 2.0
    assert b.allow()


def test_a_higher_threshold_counts_consecutive_failures_only():
    clock = Clock()
    b = breaker(clock, threshold=3)
    b.record_failure("x")
    b.record_failure("x")
    b.record_success()
    b.record_failure("x")
    assert b.state is State.CLOSED
    b.record_failure("x")
    b.record_failure("x")
    assert b.state is State.OPEN


def test_a_success_of_a_call_begun_before_the_failure_does_not_close_it():
    clock = Clock()
    b = breaker(clock)
    b.record_failure("ConnectionError")
    b.record_success()  # an in-flight call that had started before Redis went away
    assert b.state is State.OPEN
    assert not b.allow()
