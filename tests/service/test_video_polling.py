"""GET /api/videos/<id>/: zero SQL on hits, one read on a miss, one JSON shape, tenant walls."""

import pytest

from academy.videos import services
from jobbox import keys
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = [
    "id", "title", "status", "hls_path", "duration", "error_reason", "attempt",
    "previous_attempts", "encoding_progress", "encoding_step_index", "encoding_step_total",
    "encoding_step_name", "encoding_step_percent", "eta_seconds", "updated_at",
]


def processing_video(member):
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(
        video.pk, percent=40, step_index=2, step_total=4, step_name="transcode 360p",
        step_percent=60,
    )
    return video


def test_poll_of_processing_video_runs_no_sql(alice, django_assert_num_queries):
    video = processing_video(alice)
    poll(alice, video.pk)  # the first request fills the token's principal cache
    with django_assert_num_queries(0):
        response = poll(alice, video.pk)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == FIELDS
    assert body["status"] == "PROCESSING"
    assert body["encoding_progress"] == 40
    assert body["encoding_step_name"] == "transcode 360p"


@pytest.mark.parametrize("finish", ["complete", "fail"])
def test_poll_of_finished_video_within_ttl_runs_no_sql(alice, finish, django_assert_num_queries):
    video = processing_video(alice)
    if finish == "complete":
        services.complete_video(video.pk, "hls/1/master.m3u8", duration=61)
    else:
        services.fail_video(video.pk, "ffmpeg exited with 1")
    poll(alice, video.pk)
    with django_assert_num_queries(0):
        body = poll(alice, video.pk).json()
    assert body["status"] == ("READY" if finish == "complete" else "FAILED")
    if finish == "complete":
        assert body["hls_path"] == "hls/1/master.m3u8"
        assert body["duration"] == 61
        assert body["encoding_progress"] == 100
    else:
        assert body["error_reason"] == "ffmpeg exited with 1"


def test_poll_of_just_uploaded_video_runs_no_sql(alice, django_assert_num_queries):
    video = new_video(alice)
    poll(alice, video.pk)
    with django_assert_num_queries(0):
        assert poll(alice, video.pk).json()["status"] == "UPLOADED"


def test_cold_cache_costs_one_database_read_then_zero(alice, django_assert_num_queries):
    video = processing_video(alice)
    poll(alice, video.pk)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    with django_assert_num_queries(1):
        cold = poll(alice, video.pk)
    with django_assert_num_queries(0):
        warm = poll(alice, video.pk)
    assert cold.status_code == warm.status_code == 200
    assert cold.content == warm.content


def redis_and_database_bodies(member, video_id):
    """The body of a Redis hit, then of a read served from the database (a fill)."""
    from_redis = poll(member, video_id)
    outside_redis().delete(keys.status_key("video", str(video_id)))
    from_database = poll(member, video_id)
    assert from_redis.status_code == from_database.status_code == 200
    return from_redis.content, from_database.content


def test_redis_and_database_render_identical_json_after_every_transition(alice):
    video = new_video(alice)
    steps = [
        lambda: None,  # UPLOADED, as created
        lambda: services.mark_processing(video.pk, worker_id="w1"),
        lambda: services.report_video_progress(video.pk, percent=10, step_index=1,
                                               step_total=4, step_name="probe"),
        lambda: services.fail_video(video.pk, "boom: 한국어 reason"),
        lambda: services.requeue_video(video.pk),
        lambda: services.mark_processing(video.pk, worker_id="w2"),
        lambda: services.complete_video(video.pk, "hls/x/master.m3u8", duration=5),
    ]
    for step in steps:
        step()
        from_redis, from_database = redis_and_database_bodies(alice, video.pk)
        assert from_redis == from_database


def test_another_tenants_video_is_the_same_404_as_a_missing_one_on_both_paths(alice, bob):
    video = processing_video(alice)
    assert poll(alice, video.pk).status_code == 200  # now cached
    hit = poll(bob, video.pk)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    miss = poll(bob, video.pk)
    missing = poll(bob, 999_999)
    assert hit.status_code == miss.status_code == missing.status_code == 404
    assert hit.content == miss.content == missing.content
    assert b"alpha" not in hit.content and b"Lecture" not in hit.content


@pytest.mark.parametrize(
    "raw_id", ["abc", "0", "-1", "1.5", "1e3", "%EF%BC%91", "9" * 40, "1%20", "%7B1%7D", "1:2"]
)
def test_malformed_ids_answer_404_never_500(alice, raw_id):
    response = poll(alice, raw_id)
    assert response.status_code == 404
    assert response.content == poll(alice, 999_999).content


def test_unauthenticated_poll_is_refused_without_detail(alice):
    video = processing_video(alice)
    from rest_framework.test import APIClient

    assert APIClient().get(f"/api/videos/{video.pk}/").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad.get(f"/api/videos/{video.pk}/").status_code == 401
