"""What the resilience work exposes on /metrics, and the warning a person must see."""

import logging

import pytest

from jobbox.metrics import READS
from tests.faults import private_redis_server
from tests.helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, settings) -> str:
    settings.JOBBOX = {**settings.JOBBOX, "METRICS_TOKEN": "s3cret"}
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    return response.content.decode()


def test_metrics_show_reads_by_source_breaker_state_repairs_and_waits(alice, client, settings):
    video = new_video(alice)
    poll(alice, video.pk)
    poll(alice, video.pk + 1000)
    poll(alice, video.pk + 1000)
    text = scrape(client, settings)
    for line in (
        'jobbox_reads_total{kind="video",source="redis"}',
        'jobbox_reads_total{kind="video",source="negative"}',
        "jobbox_redis_breaker_state ",
        "jobbox_redis_breaker_opens_total ",
        "# TYPE jobbox_repairs_total counter",
        "# TYPE jobbox_single_flight_waits_total counter",
        "jobbox_database_unavailable_total ",
    ):
        assert line in text, line


@pytest.fixture
def private_redis():
    with private_redis_server() as server:
        yield server


def test_redis_going_away_logs_one_warning_and_counts_fallback_reads(alice, caplog,
                                                                     private_redis, settings):
    # Long intervals: a slow machine must not reach a probe or a re-read by accident.
    settings.JOBBOX = {**settings.JOBBOX, "BREAKER_OPEN_SECONDS": 60,
                       "FALLBACK_CACHE_SECONDS": 60}
    video = new_video(alice)
    poll(alice, video.pk)
    private_redis.stop()
    fallback_before = READS.labels("video", "db_fallback")._value.get()
    cached_before = READS.labels("video", "fallback_cache")._value.get()
    with caplog.at_level(logging.WARNING, logger="jobbox"):
        for _ in range(5):
            assert poll(alice, video.pk).status_code == 200
    opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
    assert len(opened) == 1
    assert READS.labels("video", "db_fallback")._value.get() == fallback_before + 1
    assert READS.labels("video", "fallback_cache")._value.get() == cached_before + 4
