"""The outage copies (jobbox.caches.OutageCopies): what a process serves while Redis is
unavailable, and what that costs the database (docs/explanation/invariants.md, invariant 6).

A controllable clock stands in for time, so expiry is a step of the test, never a race won
by luck; the database's own statements are counted (tests.faults.SqlCounter).
"""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.test import override_settings
from rest_framework.authtoken.models import Token

from academy.tenants.models import Membership
from academy.videos import services
from academy.videos.models import Video
from jobbox import caches
from jobbox.caches import OutageCopies
from tests.faults import SqlCounter, closing_connections, private_redis_server
from tests.members import Member
from tests.video_helpers import made_elsewhere, new_video

INTERVAL_SECONDS = 1.0
JOBS = 60
PEOPLE = 6
POLLER_THREADS = 8
INTERVALS = 4


class SteppingClock:
    """A clock that moves forward by `step` seconds every time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class CountingLoader:
    """A batch loader that records each batch and answers every key but "ghost"."""

    def __init__(self) -> None:
        self.batches: list[set[Any]] = []
        self.version = 1

    def __call__(self, keys: list[Any]) -> dict[Any, Any]:
        self.batches.append(set(keys))
        return {key: (key, self.version) for key in keys if key != "ghost"}


@pytest.fixture
def copies(settings) -> OutageCopies:
    settings.JOBBOX = {**settings.JOBBOX, "OUTAGE_COPY_SECONDS": INTERVAL_SECONDS}
    return OutageCopies("OUTAGE_COPY_SECONDS", clock=SteppingClock())


def test_a_copy_expiring_between_the_check_and_the_read_is_reloaded_not_a_key_error(copies):
    load = CountingLoader()
    assert copies.get("job", group="video", load_many=load) == (("job", 1), True)
    # From now on every reading of the clock is 0.6 s later: a copy stored at 0 for 1 s is
    # alive at one reading (0.6) and gone at the next (1.2), as under a thread preempted
    # between a check and a read (the KeyError, a 500, of the TTL cache this replaced).
    copies.clock.step = 0.6  # type: ignore[attr-defined]
    for _ in range(5):
        value, _queried = copies.get("job", group="video", load_many=load)
        assert value[0] == "job"


def test_copies_asked_for_recently_are_refreshed_together_in_one_query_per_interval(copies):
    load = CountingLoader()
    keys = [f"job-{n}" for n in range(200)]
    for key in keys:  # first reads one after another: each its own (small) batch
        copies.get(key, group="video", load_many=load)
    first_reads = len(load.batches)
    for interval in range(1, INTERVALS + 1):
        copies.clock.now = interval * INTERVAL_SECONDS  # type: ignore[attr-defined]
        load.version = interval + 1
        for key in keys * 3:
            value, _ = copies.get(key, group="video", load_many=load)
            assert value == (key, interval + 1)  # never older than one interval
        assert len(load.batches) == first_reads + interval
        assert load.batches[-1] == set(keys)


def test_a_second_outage_prefetches_again_and_refreshes_what_it_prefetched(copies):
    load = CountingLoader()
    keys = [f"job-{n}" for n in range(50)]
    prefetch = lambda: {key: (key, load.version) for key in keys}  # noqa: E731
    clock = copies.clock

    def poll(key: str, at: float) -> None:
        clock.now = at  # type: ignore[attr-defined]
        copies.get(key, group="video", load_many=load, prefetch=prefetch)

    poll(keys[0], 1000.0)  # an outage begins: every key read by the prefetch
    assert load.batches == []
    for key in keys:
        poll(key, 1001.0)
    for key in keys[:25]:  # late in that outage only half are still polled here
        poll(key, 1025.0)
    # Redis back for a few seconds, then away again: a copy polled recently or not, kept
    # from the first outage and stale now, must not cost a query of its own.
    poll(keys[0], 1040.0)
    batches_before = len(load.batches)
    for key in keys:
        poll(key, 1041.0)
    assert len(load.batches) == batches_before + 1  # one refresh for all, not one each


def test_an_absent_answer_is_kept_and_groups_refresh_apart(copies):
    load = CountingLoader()
    assert copies.get("ghost", group="video", load_many=load) == (None, True)
    assert copies.get("ghost", group="video", load_many=load) == (None, False)
    copies.get("token-a", group="token", load_many=load)
    assert load.batches == [{"ghost"}, {"token-a"}]


def test_first_reads_arriving_while_a_query_runs_share_the_next_one(copies):
    release = threading.Event()
    started = threading.Event()
    batches: list[set[str]] = []

    def slow_load(keys: list[str]) -> dict[str, str]:
        batches.append(set(keys))
        started.set()
        release.wait(timeout=30)
        return {key: key for key in keys}

    with ThreadPoolExecutor(max_workers=21) as pool:
        first = pool.submit(copies.get, "job-0", group="video", load_many=slow_load)
        assert started.wait(timeout=30)
        later = [pool.submit(copies.get, f"job-{n}", group="video", load_many=slow_load)
                 for n in range(1, 21)]
        while _waiting_keys(copies, "video") < 20:  # all 20 joined the next round
            threading.Event().wait(0.01)
        release.set()
        answers = [first.result(timeout=30)[0], *(f.result(timeout=30)[0] for f in later)]
    assert answers == [f"job-{n}" for n in range(21)]
    assert len(batches) == 2
    assert batches[1] == {f"job-{n}" for n in range(21)}  # the new ones, and job-0 with them


def _waiting_keys(copies: OutageCopies, group: str) -> int:
    state = copies._groups.get(group)
    return 0 if state is None or state.next_round is None else len(state.next_round.keys)


# --- Through the whole request, on the real database -----------------------------------------



@pytest.fixture
def outage() -> Iterator[tuple[Any, SteppingClock, SteppingClock]]:
    """A Redis to stop for good (the breaker stays open), the copies on controllable clocks."""
    with private_redis_server() as server, override_settings(JOBBOX={
            **django_settings.JOBBOX, "BREAKER_OPEN_SECONDS": 600,
            "OUTAGE_COPY_SECONDS": INTERVAL_SECONDS,
            "PRINCIPAL_OUTAGE_COPY_SECONDS": INTERVAL_SECONDS}):
        jobs_clock, principals_clock = SteppingClock(), SteppingClock()
        saved = caches.job_snapshots.clock, caches.principals.clock
        caches.job_snapshots.clock, caches.principals.clock = jobs_clock, principals_clock
        try:
            yield server, jobs_clock, principals_clock
        finally:
            caches.job_snapshots.clock, caches.principals.clock = saved


def people(alice: Member, count: int) -> list[Member]:
    members = [alice]
    for n in range(1, count):
        user = get_user_model().objects.create_user(username=f"alpha-{n}", password="pw")
        Membership.objects.create(user=user, tenant=alice.tenant)
        members.append(Member(alice.tenant, user, Token.objects.create(user=user).key))
    return members


def poll_all(members: list[Member], videos: list[Video], rounds: int = 1) -> list[tuple]:
    """Every job polled `rounds` times, by POLLER_THREADS threads, each as some person."""

    @closing_connections
    def one(n: int) -> tuple:
        member, video = members[n % len(members)], videos[n % len(videos)]
        response = member.client().get(f"/api/videos/{video.pk}/")
        return response.status_code, response.json().get("status"), video.pk

    with ThreadPoolExecutor(max_workers=POLLER_THREADS) as pool:
        return list(pool.map(one, range(len(videos) * rounds)))


def running(members: list[Member], count: int) -> list[Video]:
    videos = [new_video(members[n % len(members)], title=f"Lecture {n}") for n in range(count)]
    for video in videos:
        services.mark_processing(video.pk, worker_id="w1")
        made_elsewhere(video)
    return videos


@pytest.mark.django_db(transaction=True)
@pytest.mark.fault
def test_an_outage_costs_one_query_per_kind_and_per_principal_group_per_interval(alice, outage):
    redis_server, jobs_clock, principals_clock = outage
    members = people(alice, PEOPLE)
    videos = running(members, JOBS)
    redis_server.stop()
    with SqlCounter() as sql:
        answers = poll_all(members, videos, rounds=3)
        first_interval_video = sql.count(Video._meta.db_table)
        first_interval_tokens = sql.count(Token._meta.db_table)
        for interval in range(1, INTERVALS + 1):
            jobs_clock.now = principals_clock.now = interval * INTERVAL_SECONDS
            answers += poll_all(members, videos, rounds=3)
    assert {(code, status) for code, status, _ in answers} == {(200, "PROCESSING")}
    # The first poll of the outage reads the kind's live jobs (all 60) in one query; the
    # tokens of the people polling cost one batch each while none is held yet (at most one
    # per person, fewer when they arrive together).
    assert first_interval_video == 1
    assert first_interval_tokens <= PEOPLE
    # Then one query per interval for all the jobs, one for all the tokens (and one for
    # their tenants), whatever the number of jobs, pollers and polls.
    assert sql.count(Video._meta.db_table) == first_interval_video + INTERVALS
    assert sql.count(Token._meta.db_table) == first_interval_tokens + INTERVALS
    assert sql.count(Membership._meta.db_table) == sql.count(Token._meta.db_table)
    assert sql.count() == 2 * first_interval_tokens + first_interval_video + 3 * INTERVALS


@pytest.mark.django_db(transaction=True)
@pytest.mark.fault
def test_a_change_made_elsewhere_shows_within_one_interval(alice, outage):
    redis_server, jobs_clock, _ = outage
    (video,) = running([alice], 1)
    redis_server.stop()
    assert poll_all([alice], [video]) == [(200, "PROCESSING", video.pk)]
    # Another process's worker finishes the job: this process's copy is not told.
    Video.objects.filter(pk=video.pk).update(status=Video.Status.READY, version=F("version") + 1)
    jobs_clock.now = INTERVAL_SECONDS * 0.99
    assert poll_all([alice], [video]) == [(200, "PROCESSING", video.pk)]  # within the interval
    jobs_clock.now = INTERVAL_SECONDS
    assert poll_all([alice], [video]) == [(200, "READY", video.pk)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.fault
def test_a_job_created_during_the_outage_costs_one_read_and_then_joins_the_batch(alice, outage):
    redis_server, jobs_clock, _ = outage
    old = running([alice], 5)
    redis_server.stop()
    poll_all([alice], old)
    new = running([alice], 5)  # created after this process read the live jobs
    with SqlCounter() as sql:
        assert {a[0] for a in poll_all([alice], new)} == {200}
        first_reads = sql.count(Video._meta.db_table)
        jobs_clock.now = INTERVAL_SECONDS
        assert {a[0] for a in poll_all([alice], old + new, rounds=2)} == {200}
    assert 1 <= first_reads <= len(new)
    assert sql.count(Video._meta.db_table) == first_reads + 1
