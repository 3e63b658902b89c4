"""Uploads become HLS on real worker processes: progress, leases, the reaper, playback, refusals.

Every clip is made here with ffmpeg's own test sources; tiny renditions, short clips and the
ultrafast preset keep the CPU low on a shared machine.
"""

import os
import re
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from academy.celery import app as celery_app
from academy.videos import processing, reaper, services, storage, transcoding
from academy.videos.models import Video
from academy.videos.tasks import reap_expired_video_leases, transcode_video
from jobbox import keys
from jobbox.model import PROGRESS_STEP_INDEX
from process_tools import wait_until
from tests.media import make_clip
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, stored_snapshot
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

LADDER = "160x90:150,320x180:300"
STEP_NAMES = ["probe", "transcode 90p", "transcode 180p", "package"]
# Room for a worker on a busy 2-core machine to finish a 2-second clip (it takes seconds).
JOB_TIMEOUT_SECONDS = 120
POLL_PAUSE_SECONDS = 0.05
REAP_TASK = reap_expired_video_leases.name
CELERY_QUEUE = "celery"


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-second 320x180 clip with a tone, from lavfi's test sources (no downloads)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "lecture.mp4")


@pytest.fixture
def media(settings, tmp_path, monkeypatch) -> Path:
    """A private MEDIA_ROOT and a tiny ladder, here and in the workers this test starts."""
    root = tmp_path / "media"
    env = {"MEDIA_ROOT": str(root), "VIDEO_HLS_LADDER": LADDER,
           "VIDEO_X264_PRESET": "ultrafast", "VIDEO_FFMPEG_THREADS": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.MEDIA_ROOT = str(root)
    settings.VIDEO_HLS_LADDER = LADDER
    settings.VIDEO_X264_PRESET = "ultrafast"
    settings.VIDEO_FFMPEG_THREADS = 1
    return root


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def upload(member, path: Path, title: str = "Lecture 1", language: str | None = None):
    """`language`: the asker's Accept-Language (the API's refusals are in it)."""
    headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
    with path.open("rb") as handle:
        return member.client().post("/api/videos/", {"file": handle, "title": title},
                                    format="multipart", **headers)


def poll_until_done(member, video_id: int, *, on_poll=None) -> dict:
    """Poll the API until the video is READY or FAILED; `on_poll(body, queries)` sees each."""
    client = member.client()

    def finished():
        with CaptureQueriesContext(connection) as queries:
            body = client.get(f"/api/videos/{video_id}/").json()
        if on_poll:
            on_poll(body, len(queries))
        return body if body["status"] in ("READY", "FAILED") else None

    return wait_for(finished, f"video {video_id} to finish")


def decode_ok(path: Path) -> bool:
    done = subprocess.run([transcoding.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
                           "-i", str(path), "-f", "null", "-"], capture_output=True, timeout=60,
                          env=transcoding.ffmpeg_env())
    return done.returncode == 0 and not done.stderr


def test_probe_reads_the_clip_with_ffmpeg_itself(clip):
    probed = transcoding.probe(clip)
    assert (probed.demuxer, probed.width, probed.height, probed.has_audio) == (
        "mov", 320, 180, True)
    assert probed.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_upload_is_transcoded_to_playable_hls_with_forward_named_progress_and_zero_sql_polls(
    alice, bob, media, clip, monkeypatch, tmp_path
):
    # Read at real time: the job lasts seconds, so the polls see it run.
    monkeypatch.setenv("VIDEO_FFMPEG_READRATE", "1")
    worker = start_worker("--pool", "solo")
    try:
        created = upload(alice, clip)
        assert created.status_code == 201
        assert created.json()["status"] == "UPLOADED"
        video_id = created.json()["id"]
        seen: list[tuple[int, int, str]] = []
        running_polls_with_sql: list[int] = []

        def watch(body: dict, queries: int) -> None:
            if body["status"] == "PROCESSING":
                running_polls_with_sql.append(queries)
                if body["encoding_step_name"]:
                    seen.append((body["encoding_progress"], body["encoding_step_index"],
                                 body["encoding_step_name"]))

        alice.client().get(f"/api/videos/{video_id}/")  # fills the token's principal cache
        done = poll_until_done(alice, video_id, on_poll=watch)
    finally:
        stop_worker(worker)

    assert done["status"] == "READY", done
    assert done["duration"] == 2
    assert done["encoding_progress"] == 100
    assert done["hls_path"] == f"hls/{video_id}/1/master.m3u8"
    # Progress only moves forward, step by named step, and running polls ran no SQL.
    assert running_polls_with_sql and set(running_polls_with_sql) == {0}
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)
    assert [i for _, i, _ in seen] == sorted(i for _, i, _ in seen)
    assert all(STEP_NAMES[index - 1] == name for _, index, name in seen)
    assert len({name for _, _, name in seen}) >= 2, seen

    # The playlists play: a master over both renditions, each a complete VOD playlist whose
    # segments exist and decode, all served to the tenant through the API.
    client = alice.client()
    master = client.get(f"/api/videos/{video_id}/hls/master.m3u8")
    assert master.status_code == 200
    assert master["Content-Type"] == "application/vnd.apple.mpegurl"
    master_text = b"".join(master.streaming_content).decode()
    variants = re.findall(r"#EXT-X-STREAM-INF:BANDWIDTH=(\d+),RESOLUTION=(\d+x\d+).*\n(\S+)",
                          master_text)
    assert [(res, name) for _, res, name in variants] == [
        ("160x90", "90p.m3u8"), ("320x180", "180p.m3u8")]
    assert len(re.findall(r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"', master_text)) == 2
    for _, resolution, name in variants:
        playlist = b"".join(client.get(f"/api/videos/{video_id}/hls/{name}")
                            .streaming_content).decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
        segments = [line for line in playlist.splitlines() if line and line[0] != "#"]
        assert segments
        durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", playlist)]
        assert sum(durations) == pytest.approx(2.0, abs=0.2)
        for segment in segments:
            response = client.get(f"/api/videos/{video_id}/hls/{segment}")
            assert response["Content-Type"] == "video/mp2t"
            local = tmp_path / segment
            local.write_bytes(b"".join(response.streaming_content))
            assert decode_ok(local)
        assert transcoding.probe_size(tmp_path / segments[0]) == tuple(
            int(n) for n in resolution.split("x"))

    # Playback is the tenant's only; names cannot leave the video's folder.
    assert bob.client().get(f"/api/videos/{video_id}/hls/master.m3u8").status_code == 404
    for bad in ["..%2F..%2Fsettings.py", "master.m3u8.bak", "..", "source", "nope.ts"]:
        assert client.get(f"/api/videos/{video_id}/hls/{bad}").status_code == 404
    assert APIClient().get(f"/api/videos/{video_id}/hls/master.m3u8").status_code in (401, 403)


def test_playback_of_a_ready_video_runs_no_sql(alice, media, tmp_path,
                                              django_assert_num_queries):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    prefix = storage.hls_prefix(video_id=video.pk, attempt=1)
    playlist = tmp_path / "master.m3u8"
    playlist.write_text("#EXTM3U\n")
    storage.publish([playlist], prefix=prefix)
    services.complete_video(video.pk, f"{prefix}/master.m3u8", 2, worker_id="w1")
    client = alice.client()
    client.get(f"/api/videos/{video.pk}/")  # fills the principal cache
    with django_assert_num_queries(0):
        response = client.get(f"/api/videos/{video.pk}/hls/master.m3u8")
    assert b"".join(response.streaming_content) == b"#EXTM3U\n"


def test_playback_with_the_session_cookie_as_hls_js_sends_it(alice, bob, media, tmp_path):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    prefix = storage.hls_prefix(video_id=video.pk, attempt=1)
    segment = tmp_path / "90p_0000.ts"
    segment.write_bytes(b"G" * 188)
    storage.publish([segment], prefix=prefix)
    services.complete_video(video.pk, f"{prefix}/master.m3u8", 2, worker_id="w1")
    browser, stranger = Client(), Client()
    browser.force_login(alice.user)
    stranger.force_login(bob.user)
    response = browser.get(f"/api/videos/{video.pk}/hls/90p_0000.ts")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"G" * 188
    assert stranger.get(f"/api/videos/{video.pk}/hls/90p_0000.ts").status_code == 404


def test_playback_of_a_video_that_is_not_ready_is_not_found(alice, media):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    assert alice.client().get(f"/api/videos/{video.pk}/hls/master.m3u8").status_code == 404


def wait_for(predicate, what: str, timeout: float = JOB_TIMEOUT_SECONDS):
    value = wait_until(predicate, timeout_seconds=timeout, interval_seconds=POLL_PAUSE_SECONDS)
    assert value, f"timed out waiting for {what}"
    return value


def reaper_runs() -> int:
    """Reaper tasks the running workers have started, from their own statistics (a
    remote-control reply: a solo worker answers it between tasks)."""
    stats = celery_app.control.inspect(timeout=1).stats() or {}
    return sum(worker.get("total", {}).get(REAP_TASK, 0) for worker in stats.values())


def ffmpeg_processes_for(video_id: int) -> list[int]:
    marker = f"jobbox-video-{video_id}-".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_worker_killed_mid_job_is_requeued_by_the_reaper_and_ends_ready_once(
    alice, media, clip, monkeypatch, tmp_path
):
    monkeypatch.setenv("VIDEO_FFMPEG_READRATE", "1")
    monkeypatch.setenv("VIDEO_LEASE_SECONDS", "2")
    monkeypatch.setenv("VIDEO_REAP_INTERVAL_SECONDS", "0.5")
    first = start_worker("--pool", "solo")
    second = None
    try:
        video_id = upload(alice, clip).json()["id"]
        progress_key = keys.progress_key("job:video", str(video_id))
        wait_for(lambda: int(outside_redis().hget(progress_key, PROGRESS_STEP_INDEX) or 0) >= 2,
                 "the first worker to be transcoding")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # Its ffmpeg dies with it instead of burning CPU for nobody.
        wait_for(lambda: not ffmpeg_processes_for(video_id), "the orphaned ffmpeg to die", 10)
        killed_at = stored_snapshot(video_id)
        assert (killed_at["status"], killed_at["version"]) == ("PROCESSING", 2)

        # A new worker with the periodic scheduler (as `make run` starts it): its reaper
        # re-queues the video once the dead worker's lease has run out, then it transcodes.
        second = start_worker("--pool", "solo", "--beat",
                              "--schedule", str(tmp_path / "celerybeat-schedule"))
        versions: list[int] = []
        poll_until_done(alice, video_id, on_poll=lambda body, _: versions.append(
            stored_snapshot(video_id)["version"]))
        # More reaper runs change nothing (checked below, once the workers are stopped):
        # two runs the worker started after READY, counted by the worker itself. A run under
        # way at READY counts as one, so "two more" holds at least one whole run after it.
        runs_at_ready = reaper_runs()
        assert wait_for(lambda: reaper_runs() >= runs_at_ready + 2, "two more reaper runs")
    finally:
        stop_worker(first)
        if second:
            stop_worker(second)

    video = Video.objects.get(pk=video_id)
    assert (video.status, video.attempts, video.hls_path) == (
        "READY", 2, f"hls/{video_id}/2/master.m3u8")
    # create, PROCESSING, re-queued UPLOADED, PROCESSING again, READY: exactly one READY
    # (the re-queue's own snapshot is checked in the reaper's tests below).
    assert video.version == 5
    assert stored_snapshot(video_id)["version"] == 5
    assert versions == sorted(versions)


def test_duplicate_delivery_changes_nothing(alice, media, clip):
    worker = start_worker("--pool", "solo")
    try:
        video_id = upload(alice, clip, "first").json()["id"]
        assert poll_until_done(alice, video_id)["status"] == "READY"
        before = (Video.objects.get(pk=video_id), stored_snapshot(video_id),
                  stored_files(media))
        transcode_video.delay(video_id)
        transcode_video.delay(video_id)
        # The worker takes messages in order: once a later upload is READY, it has handled
        # both duplicates.
        sentinel = upload(alice, clip, "second").json()["id"]
        assert poll_until_done(alice, sentinel)["status"] == "READY"
    finally:
        stop_worker(worker)
    video = Video.objects.get(pk=video_id)
    assert (video.version, video.updated_at, video.attempts) == (
        before[0].version, before[0].updated_at, before[0].attempts)
    assert stored_snapshot(video_id) == before[1]
    assert [f for f in stored_files(media) if f.startswith(f"hls/{video_id}/")] == [
        f for f in before[2] if f.startswith(f"hls/{video_id}/")]


def test_a_duplicate_while_another_worker_holds_the_lease_leaves_it_alone(alice, media):
    video = new_video(alice)
    assert services.mark_processing(video.pk, worker_id="w1") is True
    before = stored_snapshot(video.pk)
    assert processing.transcode(video_id=video.pk, worker_id="w2") == "skipped"
    video.refresh_from_db()
    assert (video.leased_by, video.version, video.attempts) == ("w1", 2, 1)
    assert stored_snapshot(video.pk) == before


def expire_lease(video_id: int) -> None:
    Video.objects.filter(pk=video_id).update(leased_until=timezone.now() - timedelta(seconds=1))


def test_reaper_requeues_an_expired_lease_with_a_newer_version_and_a_new_message(alice, media):
    running, expired = new_video(alice, "running"), new_video(alice, "expired")
    services.mark_processing(running.pk, worker_id="w1")
    services.mark_processing(expired.pk, worker_id="w2")
    expire_lease(expired.pk)
    result = reaper.reap_expired_leases()
    assert (result.requeued, result.failed) == ([expired.pk], [])
    assert stored_snapshot(expired.pk)["status"] == "UPLOADED"
    assert stored_snapshot(expired.pk)["version"] == 3
    assert stored_snapshot(running.pk)["status"] == "PROCESSING"
    assert outside_redis().llen(CELERY_QUEUE) == 1
    # The worker that lost the lease can neither renew it nor end the video.
    assert services.renew_video_lease(expired.pk, worker_id="w2", lease_seconds=60) is False
    assert services.complete_video(expired.pk, "hls/x/master.m3u8", 2, worker_id="w2") == (
        False, "lease_lost")
    assert services.fail_video(expired.pk, "late", worker_id="w2") == (False, "lease_lost")
    assert services.renew_video_lease(running.pk, worker_id="w1", lease_seconds=60) is True


def test_reaper_ends_a_video_that_failed_too_often_as_failed_with_a_reason(
    alice, media, settings
):
    settings.VIDEO_MAX_ATTEMPTS = 2
    video = new_video(alice)
    for attempt in range(2):
        services.mark_processing(video.pk, worker_id=f"w{attempt}")
        expire_lease(video.pk)
        reaper.reap_expired_leases()
    body = stored_snapshot(video.pk)
    assert body["status"] == "FAILED"
    assert "2 attempts" in body["fields"]["error_reason"]
    assert outside_redis().llen(CELERY_QUEUE) == 1  # only the first expiry was re-queued


def test_reaper_resends_a_video_whose_queue_message_was_lost(alice, media, clip, settings):
    video_id = upload(alice, clip).json()["id"]
    outside_redis().delete(CELERY_QUEUE)  # the send after commit never reached the broker
    assert reaper.reap_expired_leases().resent == []  # not waiting long enough yet
    Video.objects.filter(pk=video_id).update(
        queued_at=timezone.now() - timedelta(seconds=settings.VIDEO_RESEND_AFTER_SECONDS + 1))
    assert reaper.reap_expired_leases().resent == [video_id]
    assert outside_redis().llen(CELERY_QUEUE) == 1
    assert reaper.reap_expired_leases().resent == []  # once per wait, not once per run
    assert stored_snapshot(video_id)["version"] == 1  # nothing a poll shows changed


def test_a_source_ffmpeg_cannot_read_ends_failed_with_a_reason(alice, media, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    name = storage.save_source(tenant_id=alice.tenant.pk, local_path=junk)
    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="broken", source=name)
    assert processing.transcode(video_id=video.pk, worker_id="w1") == "failed"
    body = stored_snapshot(video.pk)["fields"]
    assert (body["status"], body["error_reason"]) == ("FAILED", "The file is not a playable video.")


@pytest.mark.parametrize("container", ["mp4", "ts", "mkv"])
def test_a_good_upload_is_stored_and_queued_once(alice, media, clip, tmp_path, container):
    source = tmp_path / f"lecture.{container}"
    subprocess.run([transcoding.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(clip),
                    "-c", "copy", str(source)], check=True, timeout=60,
                   env=transcoding.ffmpeg_env())
    response = upload(alice, source)
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["title"], body["hls_path"]) == ("UPLOADED", "Lecture 1", None)
    video = Video.objects.get(pk=body["id"])
    assert (video.tenant_id, video.uploaded_by_id) == (alice.tenant.pk, alice.user.pk)
    assert stored_files(media) == [video.source.name]
    assert outside_redis().llen(CELERY_QUEUE) == 1
    assert alice.client().get(f"/api/videos/{video.pk}/").json() == body


@pytest.mark.parametrize("kind", ["text renamed .mp4", "empty", "over the limit",
                                  "far over the limit", "a playlist renamed .mp4"])
def test_bad_uploads_are_refused_with_nothing_stored_or_queued(
    alice, media, clip, settings, tmp_path, kind
):
    path = tmp_path / "lecture.mp4"
    if kind == "text renamed .mp4":
        path.write_text("WEBVTT\n\nthis is a caption file, not a video\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "over the limit":
        path.write_bytes(clip.read_bytes())
        settings.VIDEO_MAX_UPLOAD_BYTES = clip.stat().st_size - 1
    elif kind == "far over the limit":  # refused by its Content-Length, before it is read
        path.write_bytes(clip.read_bytes())
        settings.VIDEO_MAX_UPLOAD_BYTES = 1000
    else:  # ffmpeg's playlist demuxers would follow it to other files; never opened
        path.write_text(f"#EXTM3U\n#EXTINF:2,\n{clip}\n#EXT-X-ENDLIST\n")
    response = upload(alice, path, language="en")
    # Far over the limit: refused by academy.upload_guard from its declared length (413).
    assert response.status_code == (413 if kind == "far over the limit" else 400)
    detail = response.json()["detail"]
    assert detail in ("The file is not a playable video.", "The file is empty.") or (
        detail.startswith(("The file is larger than the limit", "The request body is larger")))
    assert Video.objects.count() == 0
    assert stored_files(media) == []
    assert outside_redis().llen(CELERY_QUEUE) == 0


def test_upload_needs_a_file_a_title_and_a_user(alice, media, clip):
    with clip.open("rb") as handle:
        no_title = alice.client().post("/api/videos/", {"file": handle}, format="multipart")
    no_file = alice.client().post("/api/videos/", {"title": "x"}, format="multipart")
    assert (no_title.status_code, no_file.status_code) == (400, 400)
    with clip.open("rb") as handle:
        anonymous = APIClient().post("/api/videos/", {"file": handle, "title": "x"},
                                     format="multipart")
    assert anonymous.status_code in (401, 403)
    assert Video.objects.count() == 0 and stored_files(media) == []


def test_a_worker_that_loses_its_lease_mid_transcode_stops_and_leaves_the_video_alone(
    alice, media, clip, settings, monkeypatch
):
    settings.VIDEO_LEASE_SECONDS = 1
    settings.VIDEO_FFMPEG_READRATE = 1
    name = storage.save_source(tenant_id=alice.tenant.pk, local_path=clip)
    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="slow", source=name)
    report = services.report_video_progress

    def report_then_lose_the_lease(video_id, **progress):
        # The worker stalls past its lease in the middle of a rendition: the reaper hands
        # the video on. Its next renewal fails and it must stop.
        if progress.get("step_name") == "transcode 180p" and Video.objects.filter(
                pk=video_id, status="PROCESSING").exists():
            expire_lease(video_id)
            assert reaper.reap_expired_leases().requeued == [video_id]
        return report(video_id, **progress)

    monkeypatch.setattr(services, "report_video_progress", report_then_lose_the_lease)
    assert processing.transcode(video_id=video.pk, worker_id="w1") == "lease_lost"
    video.refresh_from_db()
    assert (video.status, video.version, video.hls_path) == ("UPLOADED", 3, "")
    assert stored_snapshot(video.pk)["status"] == "UPLOADED"
    assert not [f for f in stored_files(media) if f.startswith("hls/")]
    assert not ffmpeg_processes_for(video.pk)


def test_an_unexpected_error_gives_the_lease_up_for_the_reaper(alice, media):
    # A source that storage cannot read as a file (here a folder): not the video's fault.
    (media / "uploads" / "videos" / "odd").mkdir(parents=True)
    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="odd", source="uploads/videos/odd")
    assert transcode_video.apply(args=[video.pk]).failed()
    video.refresh_from_db()
    assert video.status == "PROCESSING" and video.leased_until <= timezone.now()
    assert reaper.reap_expired_leases().requeued == [video.pk]
