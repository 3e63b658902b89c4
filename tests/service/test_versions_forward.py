"""No client sees a job's version go backwards (jobbox.newest): within a process, a snapshot
read from the database is never followed by an older outage copy; across processes and
after Redis lost writes, the version a client names (a poll's `If-None-Match`, a box's
`X-Jobbox-Versions`) is never answered older, at a bounded cost in database reads.

Controllable clocks stand in for time (the outage copies', the forced reads'); the
database's statements are counted (tests.faults.SqlCounter)."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db.models import F
from django.test import override_settings

from academy.videos import services
from academy.videos.models import Video
from jobbox import caches, keys
from jobbox.caches import OutageCopies
from tests.faults import SqlCounter, private_redis_server
from tests.members import Member
from tests.redis_peek import outside_redis
from tests.service.test_outage_copies import SteppingClock
from tests.video_helpers import made_elsewhere, new_video, stored_snapshot

INTERVAL_SECONDS = 1.0
HOSTILE_POLLS = 20


@pytest.fixture
def clock() -> Iterator[SteppingClock]:
    """One controllable clock for the outage copies and the forced reads."""
    shared = SteppingClock()
    saved = caches.job_snapshots.clock, caches.forced_reads.clock
    caches.job_snapshots.clock = caches.forced_reads.clock = shared
    caches.forced_reads.clear()
    try:
        with override_settings(JOBBOX={**django_settings.JOBBOX,
                                       "OUTAGE_COPY_SECONDS": INTERVAL_SECONDS,
                                       "BREAKER_OPEN_SECONDS": 600}):
            yield shared
    finally:
        caches.job_snapshots.clock, caches.forced_reads.clock = saved
        caches.forced_reads.clear()


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A Redis of the test's own, to stop for good (the breaker stays open)."""
    with private_redis_server() as server:
        yield server


def processing(member: Member) -> Video:
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    video.refresh_from_db()
    return made_elsewhere(video)


def finished_elsewhere(video: Video) -> None:
    """Another process's worker finishes the job: this process is not told."""
    Video.objects.filter(pk=video.pk).update(status=Video.Status.READY, version=F("version") + 1)


def poll(member: Member, video: Video, **headers: str) -> Any:
    return member.client().get(f"/api/videos/{video.pk}/", **headers)


def box(member: Member, **headers: str) -> Any:
    return member.client().get("/api/jobbox/", **headers)


def version_of(response: Any) -> int:
    return int(response["ETag"].strip('"').removeprefix("v").partition(".")[0])


def box_statuses(response: Any) -> dict[str, tuple[int, str]]:
    return {entry["id"]: (entry["version"], entry["job"]["status"])
            for entry in response.json()["jobs"]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.fault
def test_a_poll_after_a_box_read_from_the_database_never_answers_an_older_outage_copy(
        alice, clock, redis_server):
    video = processing(alice)
    redis_server.stop()
    assert poll(alice, video).json()["status"] == "PROCESSING"  # the outage copy, at 0 s
    finished_elsewhere(video)
    clock.now = INTERVAL_SECONDS / 2  # the copy is still young enough to serve
    read_box = box(alice)
    assert box_statuses(read_box) == {str(video.pk): (video.version + 1, "READY")}
    # Same process, same client, no header at all: the box's read replaced the copy.
    again = poll(alice, video)
    assert again.json()["status"] == "READY"
    assert version_of(again) == video.version + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.fault
def test_a_client_alternating_between_two_processes_copies_never_sees_an_older_one(
        alice, clock, redis_server, monkeypatch):
    video = processing(alice)
    process_x, process_y = caches.job_snapshots, OutageCopies(
        "OUTAGE_COPY_SECONDS", clock=clock, version_of=lambda snapshot: snapshot.version)
    redis_server.stop()
    assert poll(alice, video).json()["status"] == "PROCESSING"  # X's copy, made at 0 s
    finished_elsewhere(video)
    clock.now = INTERVAL_SECONDS / 2
    monkeypatch.setattr(caches, "job_snapshots", process_y)
    newer = poll(alice, video)  # Y's copy, made now: READY
    assert newer.json()["status"] == "READY"
    monkeypatch.setattr(caches, "job_snapshots", process_x)
    assert poll(alice, video).json()["status"] == "PROCESSING"  # no header: X's copy, as before
    with SqlCounter() as sql:
        back_on_x = poll(alice, video, HTTP_IF_NONE_MATCH=newer["ETag"])
    # X read the job once and found the very state the client holds.
    assert back_on_x.status_code == 304
    assert back_on_x["ETag"] == newer["ETag"]
    assert sql.count(Video._meta.db_table) == 1
    # A version learned from a box names the same floor (no digest: never a 304); X now
    # holds the newer state as its copy.
    learned = poll(alice, video, HTTP_IF_NONE_MATCH=f'"v{version_of(newer)}"')
    assert learned.json()["status"] == "READY"
    assert poll(alice, video).json()["status"] == "READY"


@pytest.mark.django_db(transaction=True)
def test_redis_holding_an_older_snapshot_than_the_client_saw_is_repaired_and_answered_new(
        alice, clock):
    video = processing(alice)
    status_key = keys.status_key("video", str(video.pk))
    before_loss = outside_redis().get(status_key)
    services.complete_video(video.pk, "hls/out.m3u8", duration=60)
    seen = poll(alice, video)
    assert seen.json()["status"] == "READY"
    # A failover promoted a replica that missed the last write: Redis holds the older state.
    outside_redis().set(status_key, before_loss)
    assert poll(alice, video).json()["status"] == "PROCESSING"  # no header: what Redis holds
    answered = poll(alice, video, HTTP_IF_NONE_MATCH=seen["ETag"])
    assert answered.status_code == 304  # the very state the client holds
    assert answered["ETag"] == seen["ETag"]
    assert stored_snapshot(video.pk)["status"] == "READY"  # repaired by the compare-and-set
    assert poll(alice, video).json()["status"] == "READY"


@pytest.mark.django_db(transaction=True)
def test_a_box_naming_newer_versions_than_redis_holds_answers_them(alice, clock):
    video = processing(alice)
    status_key = keys.status_key("video", str(video.pk))
    before_loss = outside_redis().get(status_key)
    services.complete_video(video.pk, "hls/out.m3u8", duration=60)
    [(_, (seen_version, _))] = box_statuses(box(alice)).items()
    outside_redis().set(status_key, before_loss)
    assert box_statuses(box(alice))[str(video.pk)][1] == "PROCESSING"  # no header
    named = f"video:{video.pk}={seen_version}, video:nonsense=x, nokind:1=5"
    answered = box(alice, HTTP_X_JOBBOX_VERSIONS=named)
    assert box_statuses(answered) == {str(video.pk): (seen_version, "READY")}
    assert stored_snapshot(video.pk)["status"] == "READY"


@pytest.mark.django_db(transaction=True)
def test_a_version_that_never_existed_costs_one_read_per_job_per_interval(alice, clock):
    video = processing(alice)
    assert poll(alice, video).status_code == 200
    assert box(alice).status_code == 200  # the box's index, rebuilt from the database once
    with SqlCounter() as sql:
        answers = [poll(alice, video, HTTP_IF_NONE_MATCH='"v999999"')
                   for _ in range(HOSTILE_POLLS)]
        boxes = [box(alice, HTTP_X_JOBBOX_VERSIONS=f"video:{video.pk}=999999")
                 for _ in range(HOSTILE_POLLS)]
        within_interval = sql.count(Video._meta.db_table)
        clock.now = INTERVAL_SECONDS
        poll(alice, video, HTTP_IF_NONE_MATCH='"v999999"')
        next_interval = sql.count(Video._meta.db_table) - within_interval
    assert {(a.status_code, a.json()["status"], version_of(a)) for a in answers} == {
        (200, "PROCESSING", video.version)}
    assert {b.status_code for b in boxes} == {200}
    assert within_interval == 1
    assert next_interval == 1


@pytest.mark.django_db(transaction=True)
def test_a_forced_read_of_another_tenants_job_is_the_same_404_as_a_missing_job(
        alice, bob, clock):
    video = processing(alice)
    assert poll(alice, video).status_code == 200
    foreign = poll(bob, video, HTTP_IF_NONE_MATCH='"v999999"')
    missing = bob.client().get("/api/videos/999999999/", HTTP_IF_NONE_MATCH='"v999999"')
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    assert "ETag" not in foreign


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_poll_answers_304_from_redis_without_sql(alice, clock):
    video = processing(alice)
    first = poll(alice, video)
    with SqlCounter() as sql:
        again = poll(alice, video, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert sql.count() == 0
    services.report_video_progress(video.pk, percent=40)
    moved = poll(alice, video, HTTP_IF_NONE_MATCH=first["ETag"])
    assert moved.status_code == 200  # progress moved: another representation, same version
    assert version_of(moved) == version_of(first)
