"""Redis back after an outage, empty or lagging (a promoted replica that missed the outage's
writes): every job shows its true state again within seconds (docs/explanation/invariants.md,
invariants 6, 8)."""

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from academy.videos import services
from academy.videos.models import Video
from jobbox import read
from process_tools import wait_until
from tests.faults import private_redis_server
from tests.video_helpers import new_video, poll, stored_snapshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]

# Long enough for a probe, the repair thread and a poll on a loaded machine; the test waits
# for the state, it does not time it.
TRUE_STATE_WITHIN_SECONDS = 30.0


def test_a_lagging_redis_is_repaired_when_the_breaker_closes(alice):
    with private_redis_server() as server, override_settings(JOBBOX={
            **settings.JOBBOX, "BREAKER_OPEN_SECONDS": 0.2}):
        video = new_video(alice)
        services.mark_processing(video.pk, worker_id="w1")
        assert poll(alice, video.pk).json()["status"] == "PROCESSING"
        redis.Redis.from_url(server.url).save()  # what the replica holds: before the outage
        server.stop()
        services.complete_video(video.pk, "hls/v/master.m3u8", 9)  # its Redis write is lost
        assert poll(alice, video.pk).json()["status"] == "READY"  # the database, meanwhile
        server.start()  # comes back with the snapshot saved above: PROCESSING, older
        assert stored_snapshot(video.pk)["status"] == "PROCESSING"

        def repaired() -> bool:
            poll(alice, video.pk)  # polls make the breaker probe, and close
            return stored_snapshot(video.pk)["status"] == "READY"

        # Polls answered from the outage copy meanwhile say READY too: Redis is what counts.
        assert wait_until(repaired, timeout_seconds=TRUE_STATE_WITHIN_SECONDS,
                          interval_seconds=0.2)
        assert poll(alice, video.pk).json()["status"] == "READY"


def test_redis_back_empty_holds_the_jobs_held_meanwhile_before_their_next_poll(alice):
    with private_redis_server() as server, override_settings(JOBBOX={
            **settings.JOBBOX, "BREAKER_OPEN_SECONDS": 0.2}):
        running = [new_video(alice, f"Lecture {n}") for n in range(3)]
        for video in running:
            services.mark_processing(video.pk, worker_id="w1")
        finished_long_ago = new_video(alice, "Finished hours ago")
        services.mark_processing(finished_long_ago.pk, worker_id="w1")
        services.complete_video(finished_long_ago.pk, "hls/old/master.m3u8", 9)
        # Changed long ago: outside the window of rows the repair re-checks by their change,
        # so only this process's outage copies can bring them back.
        Video.objects.update(updated_at=timezone.now() - timedelta(hours=3))
        server.stop()
        for video in running:
            assert poll(alice, video.pk).json()["status"] == "PROCESSING"  # outage copies
        server.start()  # empty: nothing is saved to disk
        assert stored_snapshot(running[0].pk) is None
        time.sleep(0.3)  # past BREAKER_OPEN_SECONDS: the next Redis call probes
        assert read.read_cached("video", "999999") is None  # the probe closes the breaker

        def restored() -> bool:
            return all(stored_snapshot(video.pk) is not None for video in running)

        # No poll of those jobs: the process put back what it held copies of.
        assert wait_until(restored, timeout_seconds=TRUE_STATE_WITHIN_SECONDS,
                          interval_seconds=0.1)
        assert [stored_snapshot(video.pk)["status"] for video in running] == ["PROCESSING"] * 3
        # Neither live nor polled here: left to a poll's fill, if anyone asks.
        assert stored_snapshot(finished_long_ago.pk) is None
