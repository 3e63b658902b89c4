"""One database read per job per miss, across threads and processes; negative entries."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from academy.videos.models import Video
from jobbox import keys, registry
from jobbox.fill import Claim, claim_fill, release_fill
from jobbox.metrics import SINGLE_FLIGHT_WAITS
from jobbox.read import read_job
from jobbox.write import cache_committed
from tests.faults import SqlCounter, closing_connections
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)

VIDEO_TABLE = Video._meta.db_table
CONCURRENT_POLLS = 1000
POOL_THREADS = 50


def read(member, video_id) -> str:
    return read_job("video", str(video_id), tenant=str(member.tenant.pk))["status"]


def test_a_thousand_concurrent_polls_of_a_just_deleted_key_cost_one_database_read(alice):
    video = new_video(alice)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    start = threading.Barrier(POOL_THREADS)

    @closing_connections
    def poll_once(n: int) -> str:
        if n < POOL_THREADS:
            start.wait(timeout=30)  # the first wave misses together
        return read(alice, video.pk)

    with SqlCounter() as sql, ThreadPoolExecutor(POOL_THREADS) as pool:
        statuses = list(pool.map(poll_once, range(CONCURRENT_POLLS)))
    assert statuses == ["UPLOADED"] * CONCURRENT_POLLS
    assert sql.count(VIDEO_TABLE) == 1


def waits(outcome: str) -> float:
    return SINGLE_FLIGHT_WAITS.labels("video", outcome)._value.get()


def test_a_miss_waits_for_the_fill_of_another_process_holding_the_lease(alice):
    video = new_video(alice)
    job = registry.get("video")
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    other = claim_fill(job, str(video.pk))  # "another process" leads the fill
    assert other.claim is Claim.LEASE
    filled_before = waits("filled")
    result: list[str] = []
    with SqlCounter() as sql:
        reader = threading.Thread(target=closing_connections(
            lambda: result.append(read(alice, video.pk))))
        reader.start()
        assert not reader.join(timeout=0.2) and reader.is_alive()  # waiting, not reading
        cache_committed(Video.objects.get(pk=video.pk))  # the other process's fill...
        release_fill(job, str(video.pk), other.token)
        reader.join(timeout=10)
        reads_by_waiter = sql.count(VIDEO_TABLE) - 1  # minus the "other process's" read
    assert result == ["UPLOADED"]
    assert reads_by_waiter == 0
    assert waits("filled") == filled_before + 1


def test_a_lease_whose_holder_died_costs_one_read_once_it_expires(alice, settings):
    settings.JOBBOX = {**settings.JOBBOX, "FILL_LEASE_SECONDS": 0.3}
    video = new_video(alice)
    job = registry.get("video")
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert claim_fill(job, str(video.pk)).claim is Claim.LEASE  # and its holder "dies"
    with SqlCounter() as sql:
        assert read(alice, video.pk) == "UPLOADED"
    assert sql.count(VIDEO_TABLE) == 1
    assert outside_redis().get(keys.status_key("video", str(video.pk))) is not None


def test_a_missing_id_is_remembered_briefly_and_costs_no_more_reads(alice, settings,
                                                                      django_assert_num_queries):
    video = new_video(alice)
    missing = video.pk + 1000
    poll(alice, video.pk)  # the token's principal is cached
    with django_assert_num_queries(1):
        assert poll(alice, missing).status_code == 404
    with django_assert_num_queries(0):
        assert poll(alice, missing).status_code == 404
    ttl = outside_redis().ttl(keys.missing_key("video", str(missing)))
    assert 0 < ttl <= settings.JOBBOX.get("NEGATIVE_TTL_SECONDS", 10)


def test_creating_a_job_whose_id_was_remembered_missing_makes_it_visible_at_once(
        alice, django_assert_num_queries):
    first = new_video(alice)
    next_id = first.pk + 1
    assert poll(alice, next_id).status_code == 404
    assert outside_redis().exists(keys.missing_key("video", str(next_id)))
    created = new_video(alice, title="Second")
    assert created.pk == next_id
    with django_assert_num_queries(0):
        response = poll(alice, next_id)
    assert response.status_code == 200
    assert response.json()["title"] == "Second"


def test_another_tenants_job_is_still_a_404_through_a_shared_fill(alice, bob):
    video = new_video(alice)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert poll(bob, video.pk).status_code == 404
    assert poll(alice, video.pk).status_code == 200


def test_the_fill_stores_the_snapshot_so_the_next_poll_is_a_hit(alice, django_assert_num_queries):
    video = new_video(alice)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    poll(alice, video.pk)
    with django_assert_num_queries(0):
        assert poll(alice, video.pk).status_code == 200


PROCESSES = 4
THREADS_PER_PROCESS = 25


def _child_polls(member, video_id: int, barrier, results) -> None:
    """In a forked process: threads miss together after every process is ready."""
    import os

    from django.db import connections

    from jobbox.client import reset_clients

    try:
        reset_clients()
        threads_ready = threading.Barrier(THREADS_PER_PROCESS)
        with SqlCounter() as sql, ThreadPoolExecutor(THREADS_PER_PROCESS) as pool:
            barrier.wait(timeout=30)

            @closing_connections
            def one(_: int) -> str:
                threads_ready.wait(timeout=30)
                return read(member, video_id)

            statuses = list(pool.map(one, range(THREADS_PER_PROCESS)))
        results.put((statuses.count("UPLOADED"), sql.count(VIDEO_TABLE)))
    except BaseException as exc:
        results.put((0, repr(exc)))
    finally:
        connections.close_all()
        results.close()
        results.join_thread()  # flush the queue before leaving without pytest's teardown
        os._exit(0)


def test_concurrent_misses_in_several_processes_share_one_database_read(alice):
    import multiprocessing

    from django.db import connections

    from jobbox.client import reset_clients

    video = new_video(alice)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    connections.close_all()  # children must not share our sockets
    reset_clients()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    children = [context.Process(target=_child_polls, args=(alice, video.pk, barrier, results))
                for _ in range(PROCESSES)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=90) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [answered for answered, _ in outcomes] == [THREADS_PER_PROCESS] * PROCESSES
    assert sum(reads for _, reads in outcomes) == 1
