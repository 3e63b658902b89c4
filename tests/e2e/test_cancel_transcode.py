"""Cancel and retry of real transcodes on a real Celery worker process: ffmpeg stopped, its
partial output gone, the time left shown while it ran; a cancelled video retried ends READY.

Clips come from ffmpeg's own test sources (tests.media). The long clip is read at its own
speed (VIDEO_FFMPEG_READRATE=1), so the worker is surely inside ffmpeg when the test cancels.
"""

import tempfile
import time
from pathlib import Path

import psutil
import pytest

from academy.videos.models import Video
from process_tools import wait_until
from tests.media import make_clip
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

LADDER = "160x90:150,320x180:300"
# Room for a busy 2-core machine shared by many test runs.
JOB_TIMEOUT_SECONDS = 120
# The promise is 2 s; the tests wait longer so a loaded machine does not fail them, and say
# how long it took.
STOP_TIMEOUT_SECONDS = 20


def media_env(monkeypatch, settings, root: Path, *, readrate: str) -> None:
    """A private MEDIA_ROOT and a tiny ladder, here and in the worker the test starts."""
    env = {"MEDIA_ROOT": str(root), "VIDEO_HLS_LADDER": LADDER,
           "VIDEO_X264_PRESET": "ultrafast", "VIDEO_FFMPEG_THREADS": "1",
           "VIDEO_FFMPEG_READRATE": readrate}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.MEDIA_ROOT = str(root)


def upload(member, path: Path):
    with path.open("rb") as handle:
        response = member.client().post("/api/videos/", {"file": handle, "title": "Lecture"},
                                         format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def ffmpeg_of(video_id: int) -> list[psutil.Process]:
    """ffmpeg processes working on this video (their arguments name its scratch folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        arguments = " ".join(process.info["cmdline"] or [])
        if "ffmpeg" in arguments and f"jobbox-video-{video_id}-" in arguments:
            found.append(process)
    return found


def scratch_of(video_id: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"jobbox-video-{video_id}-*"))


def published(root: Path, video_id: int) -> list[Path]:
    folder = root / "hls" / str(video_id)
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_a_transcode_cancelled_while_processing_stops_ffmpeg_and_leaves_no_partial_hls(
        alice, bob, monkeypatch, settings, tmp_path):
    media_env(monkeypatch, settings, tmp_path / "media", readrate="1")
    clip = make_clip(tmp_path / "long.mp4", seconds=60)
    worker = start_worker("--pool", "solo")
    try:
        video_id = upload(alice, clip)
        client = alice.client()

        def transcoding_with_eta() -> dict | None:
            body = client.get(f"/api/videos/{video_id}/").json()
            running = (body["status"] == "PROCESSING"
                       and (body["encoding_step_name"] or "").startswith("transcode")
                       and body["eta_seconds"] is not None)
            return body if running and ffmpeg_of(video_id) else None

        body = wait_until(transcoding_with_eta, timeout_seconds=JOB_TIMEOUT_SECONDS)
        assert body, "the transcode never showed a time left while ffmpeg ran"
        assert isinstance(body["eta_seconds"], int) and body["eta_seconds"] > 0
        assert scratch_of(video_id)  # ffmpeg is writing segments there

        assert bob.client().post(f"/api/videos/{video_id}/cancel/").status_code == 404
        asked = time.monotonic()
        response = client.post(f"/api/videos/{video_id}/cancel/")
        assert (response.status_code, response.json()["status"]) == (202, "CANCELLED")
        assert client.get(f"/api/videos/{video_id}/").json()["status"] == "CANCELLED"

        stopped = wait_until(lambda: not ffmpeg_of(video_id) and not scratch_of(video_id),
                             timeout_seconds=STOP_TIMEOUT_SECONDS)
        elapsed = time.monotonic() - asked
        assert stopped, "ffmpeg or its scratch folder outlived the cancel"
        print(f"ffmpeg gone and partial output removed {elapsed:.2f} s after the cancel")
        assert published(tmp_path / "media", video_id) == []
        log = wait_until(lambda: (lambda lines: lines if any(
            line.startswith("stopped:") for line in lines) else None)(
                client.get(f"/api/videos/{video_id}/log/").json()["lines"]),
            timeout_seconds=STOP_TIMEOUT_SECONDS)
        assert log, "the worker's last lines were not kept with the job"
        assert "attempt 1: cancelled on request" in log
        assert "step 2/4: transcode 90p" in log
        assert Video.objects.get(pk=video_id).status == "CANCELLED"
        assert client.post(f"/api/videos/{video_id}/cancel/").status_code == 202  # a no-op
    finally:
        stop_worker(worker)


def test_a_cancelled_video_retried_is_transcoded_to_ready_as_attempt_two(
        alice, monkeypatch, settings, tmp_path):
    media_env(monkeypatch, settings, tmp_path / "media", readrate="0")
    clip = make_clip(tmp_path / "short.mp4", seconds=2)
    video_id = upload(alice, clip)  # queued; no worker yet
    client = alice.client()
    assert client.post(f"/api/videos/{video_id}/cancel/").status_code == 202
    worker = start_worker("--pool", "solo")
    try:
        response = client.post(f"/api/videos/{video_id}/retry/")
        assert (response.status_code, response.json()["attempt"]) == (202, 2)

        def finished() -> dict | None:
            body = client.get(f"/api/videos/{video_id}/").json()
            return body if body["status"] in ("READY", "FAILED") else None

        body = wait_until(finished, timeout_seconds=JOB_TIMEOUT_SECONDS)
        assert body and (body["status"], body["attempt"]) == ("READY", 2), body
        assert body["previous_attempts"] == [
            {"attempt": 1, "status": "CANCELLED", "reason": None}]
        assert client.get(f"/api/videos/{video_id}/hls/master.m3u8").status_code == 200
        # Its log, kept with it: both attempts, and ffmpeg's own summary of each rendition.
        log = client.get(f"/api/videos/{video_id}/log/").json()["lines"]
        assert log[0] == "attempt 1: cancelled on request" and "attempt 2 queued" in log
        summaries = [line for line in log if line.startswith("ffmpeg ")]
        assert [line.split(":")[0] for line in summaries] == ["ffmpeg 90p", "ffmpeg 180p"]
        assert all("frame=" in line and "speed=" in line for line in summaries), summaries
        done = cancel_ready = client.post(f"/api/videos/{video_id}/cancel/")
        assert (cancel_ready.status_code, done.json()["code"]) == (409, "finished")
    finally:
        stop_worker(worker)
