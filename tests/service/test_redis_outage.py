"""Redis stopped: polls are answered from the database, and the answer is the same."""

import pytest
from django.test import override_settings

from academy.videos import services
from process_tools.redis_server import RedisServer
from tests.video_helpers import new_video, poll

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]


@pytest.fixture
def private_redis():
    with RedisServer() as server, override_settings(JOBBOX={
        "REDIS_URL": server.url,
        "TENANT_RESOLVER": "academy.tenants.services.tenant_id_for_user",
        "PRINCIPAL_MODELS": ["tenants.Membership"],
    }):
        yield server


def test_polls_are_answered_from_the_database_while_redis_is_stopped(alice, bob, private_redis):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.complete_video(video.pk, "hls/v/master.m3u8", 9)
    while_up = poll(alice, video.pk)
    assert while_up.status_code == 200

    private_redis.stop()
    while_down = poll(alice, video.pk)
    assert while_down.status_code == 200
    assert while_down.content == while_up.content
    assert poll(bob, video.pk).status_code == 404  # tenant walls hold on the fallback too


def test_transitions_commit_while_redis_is_stopped(alice, private_redis):
    video = new_video(alice)
    private_redis.stop()
    assert services.mark_processing(video.pk, worker_id="w1") is True
    assert services.report_video_progress(video.pk, percent=50) is False
    response = poll(alice, video.pk)
    assert response.status_code == 200
    assert response.json()["status"] == "PROCESSING"


def test_healthz_reports_redis_down_but_still_serving(alice, client, private_redis):
    assert client.get("/healthz").json() == {"status": "ok", "redis": "ok", "database": "ok"}
    private_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["redis"] == "down"
