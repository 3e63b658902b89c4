"""Measuring an upload by its streams before anything is stored or transcoded
(docs/explanation/invariants.md, invariant 10: "media ... are measured by what they really hold, not
by headers or text they carry").

The imageio-ffmpeg wheel ships no ffprobe, so a file is probed with ffmpeg itself, in two
bounded runs: a scan of every packet of the first video and audio stream, copied (not
decoded) into ffmpeg's structured `framecrc` output, for the real duration, frame rate and
declared frame size; then a decode of the first frames under `-max_pixels`, for their real
size. Never the container's `Duration:` or any text a file carries (a title tag once
imitated that line). Above the limits (academy.videos.media_limits) a file is refused with
a stable code; its name and content type are never trusted.
"""

import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from academy.videos.ffmpeg import (
    ALLOWED_DEMUXERS,
    LimitedProcess,
    ffmpeg_exe,
    input_args,
    start_limited,
)
from academy.videos.media_limits import (
    FrameCRC,
    MediaLimits,
    MediaRefused,
    Track,
    ran_out_of_cpu,
)

logger = logging.getLogger(__name__)

# The probe decodes this many frames: enough to prove the stream decodes, cheap on any size.
PROBE_FRAMES = 2
# The head of a probe's log that is read for ffmpeg's "Input #0, <demuxer>" line (it comes
# first; the metadata a file carries is printed after it).
LOG_HEAD_BYTES = 64 * 1024
# How much of ffmpeg's log is kept when a probe refuses a file (never shown to users).
LOG_TAIL_CHARS = 2000

_INPUT = re.compile(r"^Input #0, ([\w,]+), from ", re.MULTILINE)


class NotAVideo(MediaRefused):
    """The file is not a video we transcode (`code` says why); the message is safe to show
    to the uploader."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    demuxer: str  # pinned for the transcode
    duration_seconds: float
    width: int
    height: int
    has_audio: bool


def probe(path: Path, limits: MediaLimits | None = None) -> ProbeResult:
    """Measure a file by its streams, within `limits` (VIDEO_* settings by default).

    Two bounded ffmpeg runs: a scan of every packet's timestamps (no decoding) for the real
    duration, frame rate and declared frame size, then a decode of the first frames (their
    real size, under `-max_pixels`). Never the container's `Duration:` or any text a file
    carries. Raises `NotAVideo` with a stable `code` for anything refused.
    """
    limits = limits or MediaLimits.from_settings()
    if not path.is_file() or path.stat().st_size == 0:
        raise NotAVideo("empty", "The file is empty.")
    demuxer, scan = _scan_packets(path, limits)
    video = scan.video()
    if video is None or not video.packets:
        raise NotAVideo("not_a_video", "The file is not a playable video.")
    _check_pixels(video.width, video.height, limits)
    duration = scan.duration_seconds()
    if duration <= 0:
        raise NotAVideo("no_duration", "The video has no duration.")
    _check_duration(duration, limits)
    _check_frame_rate(video, limits)
    width, height = _decode_first_frames(path, demuxer, limits)
    _check_pixels(width, height, limits)
    return ProbeResult(demuxer=demuxer, duration_seconds=duration, width=width, height=height,
                       has_audio=scan.has_audio())


def _scan_packets(path: Path, limits: MediaLimits) -> tuple[str, FrameCRC]:
    """Every packet of the first video and audio stream, copied (not decoded) into framecrc
    and parsed as it streams; stopped once it holds more video than any allowed video."""
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", *input_args(path),
        "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-",
    ]
    scan = FrameCRC()
    with tempfile.TemporaryFile() as log:
        process = _start_probe(command, stdout=subprocess.PIPE, stderr=log, limits=limits)
        overflow = _follow(process, scan, limits)
        log.seek(0)
        head = log.read(LOG_HEAD_BYTES).decode("utf-8", "replace")
    if overflow:
        raise NotAVideo("too_many_frames", "The video holds more frames than allowed "
                        f"({limits.max_video_packets}).")
    _raise_if_over_budget(process.returncode, process.timed_out, limits)
    found = _INPUT.search(head)
    # The name is checked again: a log line that echoes text from the file could imitate
    # ffmpeg's own, and the transcode pins whatever name this returns.
    demuxer = found.group(1).split(",")[0] if found else ""
    if process.returncode != 0 or demuxer not in ALLOWED_DEMUXERS:
        logger.info("probe refused %s: %s", path.name, head[-LOG_TAIL_CHARS:])
        raise NotAVideo("not_a_video", "The file is not a playable video.")
    return demuxer, scan


def _follow(process: LimitedProcess, scan: FrameCRC, limits: MediaLimits) -> bool:
    """Feed framecrc lines to `scan` until ffmpeg ends; True if it was stopped for holding
    too many video packets."""
    overflow = False
    try:
        for line in process.stdout:
            scan.feed(line)
            video = scan.video()
            if video is not None and video.packets > limits.max_video_packets:
                overflow = True
                break
    except BaseException:
        process.finish(stop=True)
        raise
    process.finish(stop=overflow)
    return overflow


def _start_probe(command: list[str], *, stdout: int, stderr: object,
                 limits: MediaLimits) -> LimitedProcess:
    return start_limited(command, stdout=stdout, stderr=stderr,
                         cpu_seconds=limits.probe_cpu_seconds,
                         memory_bytes=limits.memory_bytes,
                         timeout_seconds=limits.probe_timeout_seconds)


def _decode_first_frames(path: Path, demuxer: str, limits: MediaLimits) -> tuple[int, int]:
    """The real size of the first decoded frames (framecrc's header for its raw output)."""
    command = [
        # One decoding thread: the probe's memory is one frame's, whatever the core count.
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
        "-max_pixels", str(limits.max_pixels), *input_args(path, demuxer),
        "-map", "0:v:0", "-frames:v", str(PROBE_FRAMES), "-f", "framecrc", "-",
    ]
    process = _start_probe(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           limits=limits)
    decoded = FrameCRC()
    try:
        for line in process.stdout:
            decoded.feed(line)
    except BaseException:
        process.finish(stop=True)
        raise
    process.finish()
    _raise_if_over_budget(process.returncode, process.timed_out, limits)
    video = decoded.video()
    if process.returncode != 0 or video is None or not video.packets or not video.width:
        # A decoder that hits the memory budget fails like one that meets garbage.
        raise NotAVideo("not_a_video", "The file is not a playable video (or reading it "
                        "needs more memory than allowed).")
    return video.width, video.height


def _check_pixels(width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_pixels:
        raise NotAVideo("too_many_pixels", f"The video's frames ({width}x{height}) are larger "
                        f"than allowed ({limits.max_pixels} pixels).")


def _check_duration(seconds: float, limits: MediaLimits) -> None:
    if seconds > limits.max_duration_seconds:
        raise NotAVideo("too_long", f"The video lasts {seconds:.0f} s, longer than allowed "
                        f"({limits.max_duration_seconds:.0f} s).")


def _check_frame_rate(video: Track, limits: MediaLimits) -> None:
    span = video.seconds()
    if span is None or video.packets < 2:
        return
    seconds = span[1] - span[0]
    rate = video.packets / seconds if seconds > 0 else float("inf")
    if rate > limits.max_frame_rate:
        raise NotAVideo("frame_rate_too_high", f"The video's frame rate ({rate:.0f}/s) is "
                        f"higher than allowed ({limits.max_frame_rate:.0f}/s).")


def _raise_if_over_budget(returncode: int | None, timed_out: bool, limits: MediaLimits) -> None:
    if timed_out:
        raise NotAVideo("probe_timeout", "The file could not be read as a video in time.")
    if ran_out_of_cpu(returncode):
        raise NotAVideo("over_budget", "Reading the file took more than its CPU budget "
                        f"({limits.probe_cpu_seconds} s).")


def probe_size(path: Path) -> tuple[int, int]:
    """The frame size of a segment ffmpeg wrote (MPEG-TS), from its decoded first frames."""
    return _decode_first_frames(path, "mpegts", MediaLimits.from_settings())
