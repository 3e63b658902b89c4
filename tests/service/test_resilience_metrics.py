"""What the resilience work exposes on /metrics, and the warning a person must see."""

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobbox import keys, reconcile_recent, registry
from jobbox.fill import Claim, claim_fill
from jobbox.metrics import READS
from tests.faults import database_unreachable, private_redis_server
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, settings) -> dict[tuple[str, frozenset], float]:
    """/metrics as a scraper reads it: each sample's value by name and labels."""
    if settings.JOBBOX.get("METRICS_TOKEN") != "s3cret":
        # A settings change resets the clients (and their breakers): done once, not between
        # a fault and the scrape that should see it.
        settings.JOBBOX = {**settings.JOBBOX, "METRICS_TOKEN": "s3cret"}
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much a sample moved between two scrapes (absent counts as 0)."""
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_reads_by_source_repairs_single_flight_waits_and_503s(alice, client,
                                                                           settings):
    video, other = new_video(alice), new_video(alice, title="Other")
    poll(alice, video.pk)  # the principal's fill, before counting
    before = scrape(client, settings)

    poll(alice, video.pk)  # a Redis hit
    poll(alice, video.pk + 1000)  # no such row: read once, remembered
    poll(alice, video.pk + 1000)  # ... then answered by the negative entry
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert reconcile_recent().total_repaired == 1
    # Another process holds the fill lease (10 s) longer than this poll waits (50 ms).
    outside_redis().delete(keys.status_key("video", str(other.pk)))
    settings.JOBBOX = {**settings.JOBBOX, "FILL_LEASE_SECONDS": 10.0}
    assert claim_fill(registry.get("video"), str(other.pk)).claim is Claim.LEASE
    settings.JOBBOX = {**settings.JOBBOX, "FILL_LEASE_SECONDS": 0.05}
    assert poll(alice, other.pk).status_code == 200
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    with database_unreachable():
        assert poll(alice, video.pk).status_code == 503
    after = scrape(client, settings)

    reads = "jobbox_reads_total"
    assert moved(before, after, reads, kind="video", source="redis") == 1
    assert moved(before, after, reads, kind="video", source="not_found") == 1
    assert moved(before, after, reads, kind="video", source="negative") == 1
    assert moved(before, after, "jobbox_repairs_total", kind="video") == 1
    assert moved(before, after, "jobbox_single_flight_waits_total", kind="video",
                 outcome="gave_up") == 1
    assert moved(before, after, "jobbox_database_unavailable_total") == 1


@pytest.fixture
def private_redis():
    with private_redis_server() as server:
        yield server


def test_redis_going_away_logs_one_warning_and_counts_fallback_reads(alice, caplog, client,
                                                                     private_redis, settings):
    # Long intervals: a slow machine must not reach a probe or a re-read by accident.
    settings.JOBBOX = {**settings.JOBBOX, "BREAKER_OPEN_SECONDS": 60,
                       "OUTAGE_COPY_SECONDS": 60}
    video = new_video(alice)
    poll(alice, video.pk)
    before = scrape(client, settings)
    private_redis.stop()
    fallback_before = READS.labels("video", "db_fallback")._value.get()
    cached_before = READS.labels("video", "outage_copy")._value.get()
    with caplog.at_level(logging.WARNING, logger="jobbox"):
        for _ in range(5):
            assert poll(alice, video.pk).status_code == 200
    opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
    assert len(opened) == 1
    assert READS.labels("video", "db_fallback")._value.get() == fallback_before + 1
    assert READS.labels("video", "outage_copy")._value.get() == cached_before + 4
    after = scrape(client, settings)
    assert moved(before, after, "jobbox_redis_breaker_opens_total") == 1
    # Open now (and closed before: a reset leaves the gauge closed with the new breaker).
    assert before[("jobbox_redis_breaker_state", frozenset())] == 0
    assert after[("jobbox_redis_breaker_state", frozenset())] == 1
