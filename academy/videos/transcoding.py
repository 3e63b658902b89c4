"""ffmpeg, the one place it runs: probing uploads and writing the HLS rendition ladder.

DESIGN.md, "The three parts" (the reference service's video worker) and "Stack" (ffmpeg from
the imageio-ffmpeg wheel, so nothing is installed by hand). That wheel ships no ffprobe, so a
file is probed with ffmpeg itself: it must open with one of a few allowed demuxers and decode
its first video frames; its name and content type are never trusted.

The demuxer allow-list matters beyond "is it a video": ffmpeg's playlist-like demuxers
(hls, concat, ...) follow references to other files, so an upload that is secretly a
playlist could make the worker read files it must not. Only container formats are allowed,
only the `file` protocol, and the transcode pins the demuxer the probe found.

A file is measured by its streams (academy.videos.media_limits): duration and frame rate
from every packet's timestamps, frame size from the decoded frames, never from the container
header or text it carries. Above the configured limits it is refused with a stable code;
the transcode is capped to the measured duration and frame rate, and every ffmpeg process
runs under a CPU-time and memory budget and a wall-clock timeout (DESIGN.md, invariant 10).
"""

import contextlib
import logging
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from academy.videos.media_limits import (
    FrameCRC,
    MediaLimits,
    MediaRefused,
    Track,
    limited_child,
    ran_out_of_cpu,
)

logger = logging.getLogger(__name__)

# Container demuxers a playable upload may use (mp4/mov, mkv/webm, avi, MPEG-TS/PS, flv).
ALLOWED_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv")
# The probe decodes this many frames: enough to prove the stream decodes, cheap on any size.
PROBE_FRAMES = 2
# The head of a probe's log that is read for ffmpeg's "Input #0, <demuxer>" line (it comes
# first; the metadata a file carries is printed after it).
LOG_HEAD_BYTES = 64 * 1024
# glibc reserves 64 MiB of address space per malloc arena (one per thread by default), which
# an address-space limit counts; two arenas keep ffmpeg's threads inside a budget set by the
# memory they use (x264 at 720p ran in 800 MiB with 2, needed 1.2 GiB without).
MALLOC_ARENA_MAX = "2"
# HLS segment length: 4 s is the common VOD choice (quick start, few files per minute).
SEGMENT_SECONDS = 4
# ffmpeg writes a -progress block this often; each block is one progress report and one
# chance to renew the lease.
PROGRESS_PERIOD_SECONDS = 0.5
AUDIO_BITRATE_KBPS = 96
# How much of ffmpeg's stderr is kept for the log when it fails (never shown to users).
STDERR_TAIL_CHARS = 2000

_INPUT = re.compile(r"^Input #0, ([\w,]+), from ", re.MULTILINE)
# The codecs ffmpeg read from the stream it wrote (x264 may pick a lower profile than asked).
_CODECS = re.compile(r'CODECS="([A-Za-z0-9.,]+)"')
_LADDER_ITEM = re.compile(r"^(\d{2,5})x(\d{2,5}):(\d{2,6})$")


class NotAVideo(MediaRefused):
    """The file is not a video we transcode (`code` says why); the message is safe to show
    to the uploader."""


class TranscodeFailed(RuntimeError):
    """ffmpeg could not write a rendition; the message is safe to store as the error reason."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    demuxer: str  # pinned for the transcode
    duration_seconds: float
    width: int
    height: int
    has_audio: bool


@dataclass(frozen=True, slots=True)
class Rendition:
    width: int
    height: int
    video_kbps: int

    @property
    def name(self) -> str:
        return f"{self.height}p"

    @property
    def playlist_name(self) -> str:
        return f"{self.name}.m3u8"

    @property
    def probe_master_name(self) -> str:
        """ffmpeg's own one-variant master, read for the CODECS it found (not published)."""
        return f"{self.name}_codecs.m3u8"


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_env() -> dict[str, str]:
    """The environment ffmpeg runs in.

    The wheel's ffmpeg is linked statically with glibc; when it converts a DVB text (every
    MPEG-TS file has some) its iconv loads the system's gconv modules, built for another
    glibc, and crashes. With GCONV_PATH naming no folder, iconv keeps to its built-in
    charsets and the demuxer falls back to the raw bytes of such names.
    """
    return {**os.environ, "GCONV_PATH": "/nonexistent/gconv", "MALLOC_ARENA_MAX": MALLOC_ARENA_MAX}


def parse_ladder(spec: str) -> list[Rendition]:
    """"640x360:800,1280x720:2800" → renditions, smallest first."""
    renditions = []
    for item in spec.split(","):
        match = _LADDER_ITEM.match(item.strip())
        if not match:
            raise ValueError(f"bad HLS ladder item {item!r}: expected WIDTHxHEIGHT:KBPS")
        width, height, kbps = (int(part) for part in match.groups())
        renditions.append(Rendition(width=width, height=height, video_kbps=kbps))
    if len(renditions) < 2 or len({r.height for r in renditions}) != len(renditions):
        raise ValueError("the HLS ladder needs at least two renditions of different heights")
    return sorted(renditions, key=lambda r: r.height)


def _input_args(path: Path, demuxer: str | None = None) -> list[str]:
    pinned = ["-f", demuxer] if demuxer else ["-format_whitelist", ",".join(ALLOWED_DEMUXERS)]
    return [*pinned, "-protocol_whitelist", "file", "-i", str(path)]


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
        ffmpeg_exe(), "-hide_banner", "-nostdin", *_input_args(path),
        "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-",
    ]
    scan = FrameCRC()
    with tempfile.TemporaryFile() as log:
        process = _start_limited(command, stdout=subprocess.PIPE, stderr=log,
                                 cpu_seconds=limits.probe_cpu_seconds, limits=limits)
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
        logger.info("probe refused %s: %s", path.name, head[-STDERR_TAIL_CHARS:])
        raise NotAVideo("not_a_video", "The file is not a playable video.")
    return demuxer, scan


def _follow(process: "LimitedProcess", scan: FrameCRC, limits: MediaLimits) -> bool:
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


def _decode_first_frames(path: Path, demuxer: str, limits: MediaLimits) -> tuple[int, int]:
    """The real size of the first decoded frames (framecrc's header for its raw output)."""
    command = [
        # One decoding thread: the probe's memory is one frame's, whatever the core count.
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
        "-max_pixels", str(limits.max_pixels), *_input_args(path, demuxer),
        "-map", "0:v:0", "-frames:v", str(PROBE_FRAMES), "-f", "framecrc", "-",
    ]
    process = _start_limited(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             cpu_seconds=limits.probe_cpu_seconds, limits=limits)
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


class LimitedProcess(subprocess.Popen):
    """An ffmpeg child under its CPU and memory budget and a wall-clock timeout."""

    timed_out = False
    _watchdog: threading.Timer

    def finish(self, *, stop: bool = False) -> None:
        """Wait for the child (killed first with `stop`: the caller read enough), end the
        watchdog."""
        if stop and self.poll() is None:
            with contextlib.suppress(OSError):
                self.kill()
        self.wait()
        self._watchdog.cancel()
        if self.stdout is not None:
            self.stdout.close()


def _start_limited(command: list[str], *, stdout: Any, stderr: Any, cpu_seconds: int,
                   limits: MediaLimits, timeout_seconds: float | None = None) -> LimitedProcess:
    process = LimitedProcess(
        command, stdout=stdout, stderr=stderr, text=True, errors="replace", env=ffmpeg_env(),
        preexec_fn=limited_child(cpu_seconds=cpu_seconds, memory_bytes=limits.memory_bytes),
    )

    def stop_overdue() -> None:
        process.timed_out = True
        with contextlib.suppress(OSError):
            process.kill()

    process._watchdog = threading.Timer(timeout_seconds or limits.probe_timeout_seconds,
                                        stop_overdue)
    process._watchdog.daemon = True
    process._watchdog.start()
    return process


def transcode_rendition(
    source: Path,
    probed: ProbeResult,
    rendition: Rendition,
    out_dir: Path,
    *,
    on_progress: Callable[[float], None],
    preset: str,
    threads: int,
    readrate: float,
    timeout_seconds: int,
    limits: MediaLimits | None = None,
) -> Path:
    """One HLS VOD rendition (playlist + MPEG-TS segments) in out_dir; returns its playlist.

    `on_progress(fraction)` is called with ffmpeg's own progress (`-progress`, out_time over
    the probed duration); an exception it raises stops ffmpeg and propagates. The output
    stops at the probed duration and the frame-rate limit; ffmpeg runs under the CPU budget
    of that duration and the memory budget of `limits`.
    """
    limits = limits or MediaLimits.from_settings()
    cpu_seconds = limits.transcode_cpu_seconds(probed.duration_seconds)
    playlist = out_dir / rendition.playlist_name
    throttle = ["-readrate", str(readrate)] if readrate > 0 else []
    audio = (["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{AUDIO_BITRATE_KBPS}k", "-ac", "2"]
             if probed.has_audio else [])
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        *throttle, "-max_pixels", str(limits.max_pixels), *_input_args(source, probed.demuxer),
        "-map", "0:v:0", *audio,
        # What the probe measured, and no more: a late timestamp cannot stretch the output,
        # nor a declared frame rate multiply its frames.
        "-t", f"{probed.duration_seconds:.3f}", "-fpsmax", f"{limits.max_frame_rate:g}",
        # Even dimensions (x264 needs them), aspect ratio kept within the rendition's box.
        "-vf", f"scale=w={rendition.width}:h={rendition.height}"
               ":force_original_aspect_ratio=decrease:force_divisible_by=2",
        "-c:v", "libx264", "-preset", preset, "-profile:v", "main", "-pix_fmt", "yuv420p",
        "-b:v", f"{rendition.video_kbps}k", "-maxrate", f"{rendition.video_kbps * 11 // 10}k",
        "-bufsize", f"{rendition.video_kbps * 2}k",
        # Keyframes on the segment grid, the same in every rendition, so players can switch.
        "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})", "-sc_threshold", "0",
        "-threads", str(threads),
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(out_dir / f"{rendition.name}_%04d.ts"),
        "-master_pl_name", rendition.probe_master_name,
        "-progress", "pipe:1", "-nostats", "-stats_period", str(PROGRESS_PERIOD_SECONDS),
        str(playlist),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        env=ffmpeg_env(),
        preexec_fn=limited_child(cpu_seconds=cpu_seconds, memory_bytes=limits.memory_bytes),
    )
    stderr_chunks: list[str] = []
    stderr_reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()),
                                     daemon=True)
    stderr_reader.start()
    timed_out = threading.Event()

    def stop_overdue() -> None:
        timed_out.set()
        process.kill()

    watchdog = threading.Timer(timeout_seconds, stop_overdue)
    watchdog.start()
    try:
        for line in process.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.isdigit():
                on_progress(min(1.0, int(value) / 1e6 / probed.duration_seconds))
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr_reader.join(timeout=5)
    if timed_out.is_set():
        raise TranscodeFailed(
            f"Transcoding the {rendition.name} rendition took longer than {timeout_seconds} s.")
    if ran_out_of_cpu(process.returncode):
        raise TranscodeFailed(f"Transcoding the {rendition.name} rendition used more than its "
                              f"CPU budget ({cpu_seconds} s).")
    if process.returncode != 0 or not playlist.is_file():
        logger.warning("ffmpeg failed on rendition %s (exit %s): %s", rendition.name,
                       process.returncode, "".join(stderr_chunks)[-STDERR_TAIL_CHARS:])
        raise TranscodeFailed(
            f"ffmpeg could not transcode the {rendition.name} rendition "
            f"(exit code {process.returncode})."
        )
    on_progress(1.0)
    return playlist


def master_playlist(renditions: list[tuple[Rendition, Path]]) -> str:
    """The master playlist over written renditions: BANDWIDTH is each one's measured peak,
    RESOLUTION its real frame size, CODECS what ffmpeg found in the stream it wrote."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rendition, playlist in renditions:
        width, height = _output_size(playlist) or (rendition.width, rendition.height)
        codecs = _CODECS.search((playlist.parent / rendition.probe_master_name).read_text())
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak_bits_per_second(playlist)},"
            f"RESOLUTION={width}x{height}" + (f',CODECS="{codecs.group(1)}"' if codecs else "")
        )
        lines.append(playlist.name)
    return "\n".join(lines) + "\n"


def peak_bits_per_second(playlist: Path) -> int:
    """The highest segment bitrate of a rendition (the HLS spec's BANDWIDTH), from the files."""
    peak, duration = 0, 0.0
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",")[0])
        elif line and not line.startswith("#") and duration > 0:
            size = (playlist.parent / line).stat().st_size
            peak = max(peak, int(size * 8 / duration))
    return max(peak, 1)


def segment_names(playlist: Path) -> list[str]:
    return [line for line in playlist.read_text().splitlines() if line and line[0] != "#"]


def _output_size(playlist: Path) -> tuple[int, int] | None:
    """The real size of a rendition (aspect ratio kept), read from its first segment."""
    segments = segment_names(playlist)
    if not segments:
        return None
    with contextlib.suppress(ValueError):
        return probe_size(playlist.parent / segments[0])
    return None


def probe_size(path: Path) -> tuple[int, int]:
    """The frame size of a segment ffmpeg wrote (MPEG-TS), from its decoded first frames."""
    return _decode_first_frames(path, "mpegts", MediaLimits.from_settings())
