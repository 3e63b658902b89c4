"""Celery on Amazon SQS, end to end: `CELERY_BROKER_URL=sqs://` with `SQS_ENDPOINT_URL` on a
local SQS-compatible server (moto's server mode, on loopback, started here on a free port)
runs the real video pipeline: upload, transcode to HLS, READY. A transcode longer than the
visibility timeout is not run twice, and a worker killed mid-transcode leaves a video that
still ends READY exactly once."""

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings as django_settings

from academy import queue, sqs
from academy.videos.models import Video
from jobbox import conf, keys
from jobbox.model import PROGRESS_STEP_INDEX
from process_tools import free_port, wait_until
from tests import workers
from tests.media import make_clip
from tests.redis_peek import outside_redis, streaming

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LADDER = "160x90:150,320x180:300"
# moto's server imports its AWS models in a few seconds; a worker's first receive follows.
SERVER_START_SECONDS = 60
JOB_TIMEOUT_SECONDS = 180
POLL_PAUSE_SECONDS = 0.1
# Short, so a redelivery happens within the test; the clip below transcodes for longer.
VISIBILITY_TIMEOUT_SECONDS = 3
# Credentials the local server accepts; real ones never leave this machine's environment.
LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
             "AWS_DEFAULT_REGION": "us-east-1",
             # Never ask an instance-metadata address for credentials.
             "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture
def sqs_endpoint(tmp_path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(url), timeout_seconds=SERVER_START_SECONDS), \
            "moto's server did not start"
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def sqs_env(sqs_endpoint, tmp_path, settings, monkeypatch) -> dict[str, str]:
    """The environment of a service on SQS: this process's sends and the workers' receives."""
    media = tmp_path / "media"
    env = {**LOCAL_AWS, "CELERY_BROKER_URL": "sqs://", "SQS_ENDPOINT_URL": sqs_endpoint,
           "SQS_QUEUE_NAME_PREFIX": f"test-{os.getpid()}-",
           "SQS_WAIT_TIME_SECONDS": "1", "SQS_POLLING_INTERVAL_SECONDS": "0.2",
           "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
           "MEDIA_ROOT": str(media), "VIDEO_HLS_LADDER": LADDER,
           "VIDEO_X264_PRESET": "ultrafast", "VIDEO_FFMPEG_THREADS": "1",
           # Real-time reading: the transcode outlasts the visibility timeout.
           "VIDEO_FFMPEG_READRATE": "1",
           "DATABASE_URL": workers.test_database_url(), "REDIS_URL": conf.settings().REDIS_URL}
    for name, value in LOCAL_AWS.items():  # this process's sends sign their requests
        monkeypatch.setenv(name, value)
    settings.MEDIA_ROOT = str(media)
    settings.VIDEO_HLS_LADDER = LADDER
    # This process sends through the service's own path (academy.queue) to SQS.
    monkeypatch.setattr(queue, "current_app", sqs_app(env))
    return env


def sqs_app(env: dict[str, str]) -> Celery:
    # Not the current app: the service's own app stays current for every later test.
    app = Celery("academy-sqs-sender", set_as_current=False)
    endpoint_broker = sqs.broker_url("sqs://", env["SQS_ENDPOINT_URL"])
    app.conf.update(
        broker_url=endpoint_broker, broker_read_url=endpoint_broker,
        broker_write_url=endpoint_broker,
        broker_transport_options=sqs.transport_options(
            endpoint_url=env["SQS_ENDPOINT_URL"],
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS, environ=env),
        task_acks_late=django_settings.CELERY_TASK_ACKS_LATE,
    )
    return app


def start_sqs_worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    """A real `celery worker` on SQS (no remote control there: nothing to ping; a message
    waits in its queue until the worker receives it), logging each task's outcome to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "academy", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--logfile", str(log), *extra], cwd=ROOT, env={**os.environ, **env},
        start_new_session=True)


def outcomes(logs: list[Path]) -> list[str]:
    """What each transcode the workers ran returned ("ready", "skipped", ...)."""
    found = []
    for log in logs:
        for line in log.read_text().splitlines() if log.exists() else []:
            if "videos.transcode_video" in line and " succeeded in " in line:
                found.append(line.rsplit(": ", 1)[-1].strip("'"))
    return found


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def upload(member, clip: Path) -> int:
    with clip.open("rb") as handle:
        response = member.client().post("/api/videos/", {"file": handle, "title": "SQS"},
                                        format="multipart")
    assert response.status_code == 201
    return response.json()["id"]


def wait_ready(member, video_id: int) -> dict:
    def finished():
        body = member.client().get(f"/api/videos/{video_id}/").json()
        return body if body["status"] in ("READY", "FAILED") else None

    body = wait_until(finished, timeout_seconds=JOB_TIMEOUT_SECONDS,
                      interval_seconds=POLL_PAUSE_SECONDS)
    assert body, f"video {video_id} did not finish"
    return body


def ready_events(member, video_id: int) -> int:
    """READY announcements of the video in its owner's event history: one per transition."""
    history = outside_redis().xrange(
        keys.owner_events_key(str(member.tenant.pk), str(member.user.pk)))
    count = 0
    for _, fields in history:
        if fields.get(b"i") == str(video_id).encode() and fields.get(b"e") == b"changed":
            count += fields.get(b"st") == b"READY"
    return count


def test_an_upload_becomes_ready_hls_through_sqs_and_a_long_transcode_is_not_duplicated(
        alice, sqs_env, tmp_path):
    # Six seconds of media read in real time: each rendition outlasts the visibility timeout,
    # so SQS hands the message to the second worker while the first transcodes.
    clip = make_clip(tmp_path / "six-seconds.mp4", seconds=6)
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [start_sqs_worker({**sqs_env, "VIDEO_LEASE_SECONDS": "60"}, log) for log in logs]
    streaming(alice.tenant.pk, alice.user.pk)  # its events are kept: READY is counted there
    try:
        video_id = upload(alice, clip)
        body = wait_ready(alice, video_id)
        # SQS handed the message out again while the first worker transcoded: the copy found
        # the video leased by a live worker and did nothing.
        assert wait_until(lambda: "skipped" in outcomes(logs),
                          timeout_seconds=JOB_TIMEOUT_SECONDS), outcomes(logs)
    finally:
        for worker in workers:
            stop(worker)

    video = Video.objects.get(pk=video_id)
    assert body["status"] == "READY"
    assert (video.attempts, video.hls_path) == (1, f"hls/{video_id}/1/master.m3u8")
    assert (Path(sqs_env["MEDIA_ROOT"]) / video.hls_path).exists()
    assert ready_events(alice, video_id) == 1


def test_a_worker_killed_mid_transcode_on_sqs_leaves_a_video_ready_exactly_once(
        alice, sqs_env, tmp_path):
    clip = make_clip(tmp_path / "lecture.mp4", seconds=4)
    short_lease = {**sqs_env, "VIDEO_LEASE_SECONDS": "2", "VIDEO_REAP_INTERVAL_SECONDS": "0.5"}
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = start_sqs_worker(short_lease, logs[0])
    second = None
    streaming(alice.tenant.pk, alice.user.pk)  # its events are kept: READY is counted there
    try:
        video_id = upload(alice, clip)
        progress_key = keys.progress_key("job:video", str(video_id))
        assert wait_until(
            lambda: int(outside_redis().hget(progress_key, PROGRESS_STEP_INDEX) or 0) >= 2,
            timeout_seconds=JOB_TIMEOUT_SECONDS), "the first worker never transcoded"
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its ffmpeg, mid-transcode
        first.wait(timeout=10)
        # A new worker with the periodic scheduler, as `make run` starts it: SQS redelivers
        # the unacknowledged message after the visibility timeout, and the reaper re-queues
        # the video once the dead worker's lease ran out; whichever comes first transcodes.
        second = start_sqs_worker(short_lease, logs[1], "--beat", "--schedule",
                                  str(tmp_path / "celerybeat-schedule"))
        body = wait_ready(alice, video_id)
    finally:
        stop(first)
        if second:
            stop(second)

    video = Video.objects.get(pk=video_id)
    assert body["status"] == "READY"
    assert video.attempts == 2
    assert ready_events(alice, video_id) == 1
    assert outcomes(logs).count("ready") == 1
