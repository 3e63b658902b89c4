"""Revocations and deletions made while Redis hangs are not undone when it resumes
(jobbox.pending): each is recorded with its change and replayed before Redis's cached
principals and snapshots are trusted again. Redis is paused with SIGSTOP (it keeps every key,
unlike a restart) for 20 s, then resumed with SIGCONT."""

import os
import signal
import time
from collections.abc import Iterator

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from academy.videos.models import Video
from jobbox import conf, keys
from jobbox.client import reset_clients
from jobbox.models import PendingInvalidation
from process_tools import wait_until
from process_tools.redis_server import RedisServer
from tests.faults import private_redis_server
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video

# Each test holds Redis paused for PAUSE_SECONDS of real time: `make test`, not test-fast.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

PAUSE_SECONDS = 20
# Polls after the resume, spread over more than the breaker's open interval (2 s): every one
# must hold, the first (the breaker's probe) as much as the later ones.
POLLS_AFTER_RESUME = 40
POLL_SPACING_SECONDS = 0.1
REPLAY_WAIT_SECONDS = 30


@pytest.fixture
def paused_redis() -> Iterator[RedisServer]:
    with private_redis_server() as server:
        reset_clients()
        yield server
        os.kill(server.process.pid, signal.SIGCONT)  # never leave it stopped
    reset_clients()


def poll_video(token: str, video_id: int) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(f"/api/videos/{video_id}/").status_code


def test_a_token_deleted_while_redis_hangs_stays_refused_after_it_resumes(alice,
                                                                          paused_redis):
    video = new_video(alice)
    assert poll_video(alice.token, video.pk) == 200  # principal and snapshot cached
    os.kill(paused_redis.process.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    # The revocation comes from a process with no open Redis connection (an admin's, a
    # shell's): connecting to the hung Redis times out before the revocation is sent.
    reset_clients()
    Token.objects.filter(key=alice.token).delete()
    assert poll_video(alice.token, video.pk) == 401  # the database answers meanwhile
    assert PendingInvalidation.objects.count() == 1
    time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused_at)))  # the hang lasts
    os.kill(paused_redis.process.pid, signal.SIGCONT)
    answers = []
    for _ in range(POLLS_AFTER_RESUME):
        answers.append(poll_video(alice.token, video.pk))
        time.sleep(POLL_SPACING_SECONDS)
    assert answers == [401] * POLLS_AFTER_RESUME
    wait_until(lambda: PendingInvalidation.objects.count() == 0,
               timeout_seconds=REPLAY_WAIT_SECONDS)


def test_a_job_deleted_while_redis_hangs_leaves_redis_and_the_box(alice, paused_redis):
    video = new_video(alice)
    assert poll_video(alice.token, video.pk) == 200
    assert alice.client().get("/api/jobbox/").json()["jobs"]
    status_key = keys.status_key("video", str(video.pk))
    assert outside_redis().exists(status_key)
    os.kill(paused_redis.process.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    reset_clients()  # as above: a process with no open connection deletes it
    Video.objects.filter(pk=video.pk).delete()
    time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused_at)))
    os.kill(paused_redis.process.pid, signal.SIGCONT)
    answers = []
    for _ in range(POLLS_AFTER_RESUME):
        answers.append(poll_video(alice.token, video.pk))
        time.sleep(POLL_SPACING_SECONDS)
    assert answers == [404] * POLLS_AFTER_RESUME
    assert alice.client().get("/api/jobbox/").json()["jobs"] == []
    wait_until(lambda: PendingInvalidation.objects.count() == 0,
               timeout_seconds=REPLAY_WAIT_SECONDS)
    assert not outside_redis().exists(status_key)  # no snapshot left to its TTL
    assert paused_redis.url == conf.settings().REDIS_URL
