"""The in-process pieces that keep a process from serving an older job state after a newer
one (jobbox.caches): outage copies that a newer version always wins, and reads a client can
force, made once per key per interval however often they are asked for."""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from jobbox.caches import OncePerInterval, OutageCopies
from tests.library.test_breaker import Clock

INTERVAL_SECONDS = 1.0
ASKERS = 8


@dataclass(frozen=True)
class Versioned:
    name: str
    version: int


@pytest.fixture
def interval(settings) -> None:
    settings.JOBBOX = {**getattr(settings, "JOBBOX", {}), "OUTAGE_COPY_SECONDS": INTERVAL_SECONDS}


def versioned_copies() -> OutageCopies:
    return OutageCopies("OUTAGE_COPY_SECONDS", clock=Clock(),
                        version_of=lambda value: value.version)


def test_a_round_that_read_before_a_newer_offer_keeps_the_newer_version(interval):
    copies = versioned_copies()

    def load_then_newer_offered(keys: list[Any]) -> dict[Any, Any]:
        # A box read elsewhere in the process finds the job's next version while this
        # round's query (which read the older row) is still running.
        copies.offer("job", group="video", value=Versioned("job", 2))
        return {"job": Versioned("job", 1)}

    value, queried = copies.get("job", group="video", load_many=load_then_newer_offered)
    assert queried and value.version == 2
    assert copies.get("job", group="video", load_many=dict)[0].version == 2


def test_an_older_offer_never_replaces_a_newer_copy(interval):
    copies = versioned_copies()
    copies.get("job", group="video", load_many=lambda keys: {"job": Versioned("job", 5)})
    copies.offer("job", group="video", value=Versioned("job", 4))
    assert copies.get("job", group="video", load_many=dict)[0].version == 5
    copies.offer("job", group="video", value=Versioned("job", 6))
    assert copies.get("job", group="video", load_many=dict)[0].version == 6


def test_an_offer_outside_an_outage_keeps_nothing(interval):
    copies = versioned_copies()
    copies.offer("job", group="video", value=Versioned("job", 1))
    assert len(copies) == 0


def test_a_forced_read_runs_once_per_key_per_interval_and_is_shared(interval):
    clock = Clock()
    reads = OncePerInterval("OUTAGE_COPY_SECONDS", max_keys=100, clock=clock)
    loads: list[list[Any]] = []
    release = threading.Event()

    def slow_load(keys: list[Any]) -> dict[Any, Any]:
        loads.append(list(keys))
        release.wait(5)
        return {key: Versioned(key, 7) for key in keys}

    with ThreadPoolExecutor(max_workers=ASKERS) as pool:
        asked = [pool.submit(reads.read, ["job"], slow_load) for _ in range(ASKERS)]
        release.set()
        answers = [future.result()[0] for future in asked]
    assert loads == [["job"]]
    assert all(answer == {"job": Versioned("job", 7)} for answer in answers)
    assert reads.read(["job", "other"], slow_load)[1] == ["other"]  # only the new key
    clock.now += INTERVAL_SECONDS
    assert reads.read(["job"], slow_load)[1] == ["job"]
    assert len(loads) == 3
