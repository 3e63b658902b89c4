"""The outage copies (jobbox.caches): what a process serves while Redis is unavailable.

DESIGN.md, invariant 6. A controllable clock stands in for time, so expiry is a step of the
test, never a race won by luck.
"""

from jobbox.caches import FallbackCache


class SteppingClock:
    """A clock that moves forward by `step` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_copy_expiring_between_the_check_and_the_read_is_reloaded_not_a_key_error(settings):
    settings.JOBBOX = {**settings.JOBBOX, "FALLBACK_CACHE_SECONDS": 1.0}
    clock = SteppingClock(step=0.0)
    copies: FallbackCache[str] = FallbackCache("FALLBACK_CACHE_SECONDS", timer=clock)
    assert copies.get_or_load("job", lambda: "v1") == ("v1", True)
    # From now on every reading of the clock is 0.6 s later: the copy (stored at 0 for 1 s)
    # is alive when its presence is checked (0.6) and gone when it is read (1.2), as under a
    # thread preempted in between.
    clock.step = 0.6
    value, loaded = copies.get_or_load("job", lambda: "v2")
    assert value in ("v1", "v2")
    assert loaded == (value == "v2")
