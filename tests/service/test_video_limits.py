"""A video costs what its real length and size say (academy.videos.media_limits;
docs/explanation/invariants.md, invariant 10).

Each finding is reproduced with a small generated file and, where the real one would be
slow or heavy, with small limits set here: a second frame hours after the first, a
decompression-bomb frame, a title that imitates ffmpeg's `Duration:` line, a frame rate far
above any camera's. Each is refused (or capped) with a stable code, never transcoded for
hours, never an OverflowError.
"""

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.videos import processing, services, storage, transcoding
from academy.videos.media_limits import (
    CPU_ACCOUNTING_SHARE,
    MediaLimits,
    limited_child,
    ran_out_of_cpu,
    wait_measuring_cpu,
)
from academy.videos.models import Video
from tests.media import (
    make_clip,
    make_fast_clip,
    make_late_frame_clip,
    make_png_frame,
    make_titled_clip,
)
from tests.video_helpers import stored_snapshot

pytestmark = pytest.mark.django_db(transaction=True)

TEN_HOURS_SECONDS = 10 * 3600
FORGED_DURATION_TITLE = "Duration: 99999999999999999999:00:00.00"
LADDER = "160x90:150,320x180:300"
# Enough for ffmpeg and two frames of an ordinary clip with one decoding thread (it needed
# under 200 MiB here), too little for a 4000x4000 frame (over 275 MiB).
SMALL_MEMORY_BYTES = 256 * 1024**2


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.VIDEO_HLS_LADDER = LADDER
    settings.VIDEO_X264_PRESET = "ultrafast"
    settings.VIDEO_FFMPEG_THREADS = 1
    return Path(settings.MEDIA_ROOT)


def _upload(member, path: Path, title: str = "Lecture"):
    with path.open("rb") as handle:
        return member.client().post("/api/videos/", {"file": handle, "title": title},
                                    format="multipart")


def _stored_video(member, path: Path, title: str = "Lecture") -> Video:
    """A video whose source is already stored (as if uploaded under older limits)."""
    name = storage.save_source(tenant_id=member.tenant.pk, local_path=path)
    return services.create_video(tenant_id=member.tenant.pk, uploaded_by_id=member.user.pk,
                                 title=title, source=name)


def _refusal(path: Path, limits: MediaLimits | None = None) -> str:
    with pytest.raises(transcoding.NotAVideo) as refused:
        transcoding.probe(path, limits)
    return refused.value.code


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_a_second_frame_ten_hours_later_is_measured_from_the_packets_and_refused(
        alice, media, tmp_path):
    clip = make_late_frame_clip(tmp_path / "late.mkv", gap_seconds=TEN_HOURS_SECONDS)
    assert clip.stat().st_size < 50_000
    assert _refusal(clip) == "too_long"
    response = _upload(alice, clip)
    assert (response.status_code, response.json()["code"]) == (400, "too_long")
    assert Video.objects.count() == 0


def test_the_worker_measures_again_and_fails_a_late_frame_clip_without_transcoding(
        alice, media, tmp_path):
    video = _stored_video(alice, make_late_frame_clip(tmp_path / "late.mkv",
                                                      gap_seconds=TEN_HOURS_SECONDS))
    cpu_before = _children_cpu_seconds()
    assert processing.transcode(video_id=video.pk, worker_id="w1") == "failed"
    body = stored_snapshot(video.pk)["fields"]
    assert body["status"] == "FAILED" and "longer than allowed" in body["error_reason"]
    assert _children_cpu_seconds() - cpu_before < 5  # a probe's worth, not hours of frames


def test_a_late_frame_within_a_generous_limit_is_transcoded_to_its_real_length_only(
        alice, media, tmp_path, settings):
    """Allowed (the limit says so), it costs what its timestamps say and is READY with that
    duration: the probed length, not the container's, bounds the output."""
    settings.VIDEO_MAX_DURATION_SECONDS = 30
    video = _stored_video(alice, make_late_frame_clip(tmp_path / "late.mkv", gap_seconds=6))
    assert processing.transcode(video_id=video.pk, worker_id="w1") == "ready"
    assert Video.objects.get(pk=video.pk).duration == 6


def test_the_output_stops_at_the_probed_duration(media, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=4)
    probed = transcoding.probe(clip)
    capped = transcoding.ProbeResult(demuxer=probed.demuxer, duration_seconds=1.0,
                                     width=probed.width, height=probed.height,
                                     has_audio=probed.has_audio)
    out = tmp_path / "hls"
    out.mkdir()
    playlist = transcoding.transcode_rendition(
        clip, capped, transcoding.Rendition(160, 90, 150), out, on_progress=lambda _: None,
        preset="ultrafast", threads=1, readrate=0, timeout_seconds=60)
    seconds = sum(float(line[len("#EXTINF:"):].split(",")[0])
                  for line in playlist.read_text().splitlines() if line.startswith("#EXTINF:"))
    assert 0.9 <= seconds <= 1.1


def test_a_frame_larger_than_the_pixel_limit_is_refused_before_it_is_decoded(
        alice, media, tmp_path):
    bomb = make_png_frame(tmp_path / "bomb.mkv", size="4000x4000")  # 16 Mpx, 4K is 8.3 Mpx
    assert bomb.stat().st_size < 200_000
    assert _refusal(bomb) == "too_many_pixels"
    response = _upload(alice, bomb)
    assert (response.status_code, response.json()["code"]) == (400, "too_many_pixels")


@pytest.mark.e2e  # a decoder runs until it reaches a real memory limit
def test_the_memory_budget_stops_a_bomb_the_pixel_limit_lets_through(media, tmp_path,
                                                                     settings):
    settings.VIDEO_MAX_PIXELS = 10**9
    settings.VIDEO_FFMPEG_MEMORY_BYTES = SMALL_MEMORY_BYTES
    ordinary = transcoding.probe(make_clip(tmp_path / "clip.mp4"))
    assert (ordinary.width, ordinary.height) == (320, 180)  # the budget itself is workable
    bomb = make_png_frame(tmp_path / "bomb.mkv", size="4000x4000")
    assert _refusal(bomb) == "not_a_video"


def test_a_title_that_imitates_ffmpegs_duration_line_is_not_read_as_the_duration(
        alice, media, tmp_path):
    clip = make_titled_clip(tmp_path / "titled.mp4", title=FORGED_DURATION_TITLE)
    assert transcoding.probe(clip).duration_seconds == pytest.approx(2.0, abs=0.1)
    video = _stored_video(alice, clip)
    assert processing.transcode(video_id=video.pk, worker_id="w1") == "ready"
    assert Video.objects.get(pk=video.pk).duration == 2


def test_a_frame_rate_above_the_limit_is_refused(media, tmp_path):
    clip = make_fast_clip(tmp_path / "fast.mkv", rate=1000, seconds=0.5)
    assert _refusal(clip) == "frame_rate_too_high"


def test_the_packet_scan_stops_at_the_most_frames_any_allowed_video_holds(
        media, tmp_path, settings):
    settings.VIDEO_MAX_DURATION_SECONDS = 1
    settings.VIDEO_MAX_FRAME_RATE = 10
    clip = make_clip(tmp_path / "clip.mp4", seconds=2)  # 50 frames > 1 s x 10/s
    assert _refusal(clip) == "too_many_frames"


# As ffmpeg does: SIGXCPU caught, a clean exit with 255 (not a death by the signal).
_CATCHES_SIGXCPU = ("import signal, sys\n"
                    "signal.signal(signal.SIGXCPU, lambda *_: sys.exit(255))\n"
                    "while True: pass\n")


@pytest.mark.e2e  # a child spins for a second of real CPU
def test_a_child_that_catches_the_cpu_signal_and_exits_still_counts_as_over_budget():
    child = subprocess.Popen([sys.executable, "-c", _CATCHES_SIGXCPU], text=True,
                             preexec_fn=limited_child(cpu_seconds=1, memory_bytes=2**30))
    used = wait_measuring_cpu(child)
    assert child.returncode == 255  # not killed by SIGXCPU: the exit code alone cannot tell
    assert used >= 1 * CPU_ACCOUNTING_SHARE  # the kernel's count reached the limit
    assert ran_out_of_cpu(child.returncode, used, 1)
    assert not ran_out_of_cpu(child.returncode, 0.2, 1)  # a failure well within the budget


@pytest.mark.e2e  # ffmpeg spins until its real CPU budget stops it
def test_a_transcode_over_its_cpu_budget_is_stopped_there(alice, media, tmp_path, settings):
    settings.VIDEO_FFMPEG_CPU_BASE_SECONDS = 1
    settings.VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND = 0
    clip = make_clip(tmp_path / "clip.mp4", size="640x360", seconds=8)
    probed = transcoding.probe(clip)
    out = tmp_path / "hls"
    out.mkdir()
    cpu_before = _children_cpu_seconds()
    with pytest.raises(transcoding.TranscodeFailed, match="CPU budget"):
        transcoding.transcode_rendition(
            clip, probed, transcoding.Rendition(640, 360, 800), out,
            on_progress=lambda _: None, preset="slow", threads=1, readrate=0,
            timeout_seconds=600)
    # The budget plus the hard limit's margin, plus a little for start-up accounting.
    assert _children_cpu_seconds() - cpu_before < 3


@pytest.mark.parametrize("title", ["Lecture\x00 1", "Lecture\x1b[31m", "Line\nbreak", "\x7f"])
def test_control_characters_in_a_title_are_a_400(alice, media, tmp_path, title):
    response = _upload(alice, make_clip(tmp_path / "clip.mp4"), title=title)
    assert (response.status_code, response.json()["code"]) == (400, "control_character")
    assert Video.objects.count() == 0


def test_a_title_in_any_script_with_emoji_is_accepted(alice, media, tmp_path):
    title = "강의 1 — 👩‍🏫"  # the joiner inside the emoji is a format character, not a control
    response = _upload(alice, make_clip(tmp_path / "clip.mp4"), title=title)
    assert response.status_code == 201 and response.json()["title"] == title


def test_control_characters_in_an_ai_job_type_are_a_400(alice, media):
    sheet = SimpleUploadedFile("scores.xlsx", b"PK\x03\x04")
    response = alice.client().post("/api/ai/jobs/", {"file": sheet, "job_type": "excel\x00x"},
                                   format="multipart")
    assert (response.status_code, response.json()["code"]) == (400, "control_character")
