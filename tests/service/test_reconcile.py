"""Lost cache writes: retried after commit, then repaired by the reconciler
(docs/explanation/invariants.md, invariant 8), which runs from Celery beat in the reference
service."""

import time

import pytest
from django.conf import settings
from django.utils import timezone

from academy.celery import app as celery_app
from academy.maintenance.tasks import RECONCILE_INTERVAL_SECONDS, reconcile_job_snapshots
from academy.videos import services
from academy.videos.models import Video
from jobbox import keys, registry, write
from jobbox.client import RedisUnavailable
from jobbox.metrics import REPAIRS
from jobbox.reconcile import reconcile_recent
from process_tools import wait_until
from tests.redis_peek import outside_redis, streaming
from tests.video_helpers import new_video, poll, stored_snapshot

pytestmark = pytest.mark.django_db(transaction=True)

# The staleness bound (docs/how-to/outages.md): retry (< 1 s) + one beat interval + one run, with
# room for a busy worker.
STATED_BOUND_SECONDS = 60.0


def refuse_write(snapshot, **_):
    """A snapshot write failing as if Redis had timed out (reads still work)."""
    raise RedisUnavailable("TimeoutError (injected)")


def test_a_write_that_fails_once_after_commit_is_stored_by_the_retry(alice, monkeypatch):
    video = new_video(alice)
    real, attempts = write.store_job_part, []

    def flaky(snapshot):
        attempts.append(snapshot.version)
        if len(attempts) == 1:
            raise RedisUnavailable("ConnectionError (injected)")
        return real(snapshot)

    monkeypatch.setattr(write, "store_job_part", flaky)
    services.mark_processing(video.pk, worker_id="w1")
    assert attempts == [2, 2]
    assert stored_snapshot(video.pk)["status"] == "PROCESSING"


def box_entries_and_events(member):
    tenant, owner = str(member.tenant.pk), str(member.user.pk)
    redis = outside_redis()
    return (redis.zrange(keys.box_index_key(tenant, owner), 0, -1, withscores=True),
            redis.xrange(keys.owner_events_key(tenant, owner)))


def test_an_owner_update_lost_between_the_two_slots_is_recorded_by_the_reconciler(
        alice, monkeypatch):
    """The job's compare-and-set stored, the owner's box entry and event did not (a crash
    between the two scripts): the reconciler records them, with the job's current state."""
    streaming(alice.tenant.pk, alice.user.pk)
    video = new_video(alice)
    alice.client().get("/api/jobbox/")  # the box index exists
    monkeypatch.setattr(write, "record_owner_part", refuse_write)
    services.mark_processing(video.pk, worker_id="w1")
    monkeypatch.undo()
    assert stored_snapshot(video.pk)["status"] == "PROCESSING"
    index_before, events_before = box_entries_and_events(alice)

    report = reconcile_recent()
    assert report.repaired["video"] == 1
    index_after, events_after = box_entries_and_events(alice)
    assert len(events_after) == len(events_before) + 1
    assert (events_after[-1][1][b"st"], events_after[-1][1][b"v"]) == (b"PROCESSING", b"2")
    score = dict(index_after)
    assert max(score.values()) >= max(dict(index_before).values())
    assert reconcile_recent().repaired["video"] == 0  # nothing left to repair


def test_a_write_lost_after_commit_is_repaired_by_the_reconciler(alice, monkeypatch):
    video = new_video(alice)
    monkeypatch.setattr(write, "store_job_part", refuse_write)
    services.mark_processing(video.pk, worker_id="w1")
    monkeypatch.undo()
    assert Video.objects.get(pk=video.pk).status == "PROCESSING"
    assert poll(alice, video.pk).json()["status"] == "UPLOADED"  # stale until repaired

    repairs_before = REPAIRS.labels("video")._value.get()
    report = reconcile_recent()
    assert report.repaired["video"] == 1
    assert REPAIRS.labels("video")._value.get() == repairs_before + 1
    assert poll(alice, video.pk).json()["status"] == "PROCESSING"
    assert not any(reconcile_recent().repaired.values())  # nothing left to do


def test_the_reconciler_never_overwrites_a_newer_snapshot(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    newer = stored_snapshot(video.pk)
    Video.objects.filter(pk=video.pk).update(version=1)  # the row as an old reader saw it
    assert not any(reconcile_recent().repaired.values())
    assert stored_snapshot(video.pk) == newer


def test_the_reconciler_replaces_garbage_and_fills_missing_keys(alice):
    garbage, missing = new_video(alice), new_video(alice)
    outside_redis().set(keys.status_key("video", str(garbage.pk)), b"\xff not json")
    outside_redis().delete(keys.status_key("video", str(missing.pk)))
    assert reconcile_recent().repaired["video"] == 2
    assert stored_snapshot(garbage.pk)["status"] == "UPLOADED"
    assert stored_snapshot(missing.pk)["status"] == "UPLOADED"


def test_the_reconciler_reads_only_rows_changed_within_its_window(
        alice, django_assert_num_queries):
    old, recent = new_video(alice, title="old"), new_video(alice, title="recent")
    Video.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timezone.timedelta(hours=2))
    for video in (old, recent):
        outside_redis().delete(keys.status_key("video", str(video.pk)))
    # One bounded query per kind, and one for invalidations Redis missed (jobbox.pending).
    with django_assert_num_queries(len(registry.all_jobs()) + 1):
        report = reconcile_recent(window_seconds=600)
    assert report.checked["video"] == 1
    assert stored_snapshot(recent.pk) is not None
    assert stored_snapshot(old.pk) is None  # out of the window: the next miss fills it


def test_the_reconciler_runs_every_interval_from_celery_beat():
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values()
               if e["task"] == reconcile_job_snapshots.name]
    assert len(entries) == 1
    assert entries[0]["schedule"] == RECONCILE_INTERVAL_SECONDS
    assert RECONCILE_INTERVAL_SECONDS < STATED_BOUND_SECONDS
    assert reconcile_job_snapshots.name in celery_app.tasks


@pytest.mark.e2e  # starts a real Celery worker process
def test_a_lost_write_is_repaired_by_the_task_in_a_real_worker_within_the_bound(
        alice, monkeypatch, worker):
    video = new_video(alice)
    monkeypatch.setattr(write, "store_job_part", refuse_write)
    services.mark_processing(video.pk, worker_id="w1")
    monkeypatch.undo()
    lost_at = time.monotonic()
    reconcile_job_snapshots.delay()  # what beat sends every RECONCILE_INTERVAL_SECONDS
    assert wait_until(lambda: stored_snapshot(video.pk)["status"] == "PROCESSING",
                      timeout_seconds=STATED_BOUND_SECONDS - RECONCILE_INTERVAL_SECONDS)
    print(f"repaired {time.monotonic() - lost_at:.2f} s after the task was sent")
