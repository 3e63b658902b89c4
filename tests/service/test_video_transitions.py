"""Video transitions: the seed's semantics, versions, TTLs, after-commit writes, progress."""

import pytest
from django.db import transaction

from academy.videos import services
from academy.videos.models import Video
from academy.videos.redis_status_cache import cache_video_status, get_video_status_from_redis
from jobbox import conf, keys
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, stored_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_transitions_follow_the_seed_and_bump_the_version(alice):
    video = new_video(alice)
    assert stored_snapshot(video.pk)["version"] == 1
    assert services.mark_processing(video.pk, worker_id="w1") is True
    assert services.mark_processing(video.pk, worker_id="w1") is True  # already PROCESSING
    assert services.complete_video(video.pk, "hls/a/master.m3u8", 12) == (True, "ok")
    assert services.complete_video(video.pk, "hls/a/master.m3u8", 12) == (True, "idempotent")
    assert services.mark_processing(video.pk) is False  # only UPLOADED may start
    video.refresh_from_db()
    assert (video.status, video.version, video.leased_by, video.leased_until) == (
        "READY", 3, "", None)
    assert stored_snapshot(video.pk)["version"] == 3


def test_failure_is_idempotent_and_requeue_gets_a_newer_version(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    assert services.fail_video(video.pk, "x" * 5000) == (True, "ok")
    assert services.fail_video(video.pk, "again") == (True, "idempotent")
    video.refresh_from_db()
    assert len(video.error_reason) == services.ERROR_REASON_MAX_CHARS
    assert services.requeue_video(video.pk) == (True, "ok")
    snapshot = stored_snapshot(video.pk)
    assert (snapshot["status"], snapshot["version"]) == ("UPLOADED", 4)


def test_missing_video_answers_not_found(db):
    assert services.mark_processing(424242) is False
    assert services.complete_video(424242, "x") == (False, "not_found")
    assert services.fail_video(424242, "x") == (False, "not_found")


def test_running_and_terminal_snapshots_carry_the_seeds_ttls(alice):
    video = new_video(alice)
    services.mark_processing(video.pk)
    status_key = keys.status_key("video", str(video.pk))
    assert conf.settings().RUNNING_TTL_SECONDS - 5 <= outside_redis().ttl(status_key) <= 7200
    services.complete_video(video.pk, "hls/a/master.m3u8")
    assert 3600 - 5 <= outside_redis().ttl(status_key) <= 3600


def test_progress_refreshes_the_running_ttl(alice):
    video = new_video(alice)
    services.mark_processing(video.pk)
    status_key = keys.status_key("video", str(video.pk))
    outside_redis().expire(status_key, 30)
    services.report_video_progress(video.pk, percent=5, step_name="probe")
    assert outside_redis().ttl(status_key) > 7000
    progress_key = keys.progress_key("job:video", str(video.pk))
    assert outside_redis().ttl(progress_key) > 7000


def test_progress_never_goes_backwards_and_a_late_report_changes_nothing(alice):
    video = new_video(alice)
    services.mark_processing(video.pk)
    services.report_video_progress(video.pk, percent=60, step_index=3, step_total=4)
    services.report_video_progress(video.pk, percent=20, step_index=3, step_total=4)
    assert get_video_status_from_redis(video.pk)["encoding_progress"] == 60
    services.fail_video(video.pk, "boom")
    assert services.report_video_progress(video.pk, percent=90) is False
    assert get_video_status_from_redis(video.pk)["encoding_progress"] == 60


def test_requeue_clears_the_previous_runs_progress(alice):
    video = new_video(alice)
    services.mark_processing(video.pk)
    services.report_video_progress(video.pk, percent=70, step_name="package")
    services.fail_video(video.pk, "worker died")
    services.requeue_video(video.pk)
    body = get_video_status_from_redis(video.pk)
    assert (body["status"], body["encoding_progress"], body["encoding_step_name"]) == (
        "UPLOADED", None, None)


def test_progress_never_touches_the_database(alice, django_assert_num_queries):
    video = new_video(alice)
    services.mark_processing(video.pk)
    with django_assert_num_queries(0):
        for percent in range(0, 100, 10):
            services.report_video_progress(video.pk, percent=percent, step_index=1,
                                           step_total=1, step_name="transcode",
                                           step_percent=percent)


def test_nothing_reaches_redis_before_commit_and_a_rollback_leaves_it_as_it_was(alice):
    video = new_video(alice)
    before = outside_redis().get(keys.status_key("video", str(video.pk)))

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        assert services.mark_processing(video.pk, worker_id="w1")
        # Committed inside the outer block? No: the service's atomic is nested, so
        # nothing may be visible yet to another connection.
        assert outside_redis().get(keys.status_key("video", str(video.pk))) == before
        raise Abort
    assert outside_redis().get(keys.status_key("video", str(video.pk))) == before
    assert Video.objects.get(pk=video.pk).status == "UPLOADED"


def test_commit_makes_the_transition_visible_from_another_connection(alice):
    video = new_video(alice)
    with transaction.atomic():
        services.mark_processing(video.pk, worker_id="w1")
        assert stored_snapshot(video.pk)["status"] == "UPLOADED"
    assert stored_snapshot(video.pk)["status"] == "PROCESSING"


def test_seed_helpers_wrap_the_library(alice):
    video = new_video(alice)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert get_video_status_from_redis(video.pk) is None
    assert cache_video_status(video.pk) is True
    assert cache_video_status(video.pk) is False  # same version: nothing newer to store
    assert get_video_status_from_redis(video.pk)["status"] == "UPLOADED"
    assert cache_video_status(987654) is False
