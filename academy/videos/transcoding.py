"""ffmpeg, the one place it runs: probing uploads and writing the HLS rendition ladder.

DESIGN.md, "The three parts" (the reference service's video worker) and "Stack" (ffmpeg from
the imageio-ffmpeg wheel, so nothing is installed by hand). That wheel ships no ffprobe, so a
file is probed with ffmpeg itself: it must open with one of a few allowed demuxers and decode
its first video frames; its name and content type are never trusted.

The demuxer allow-list matters beyond "is it a video": ffmpeg's playlist-like demuxers
(hls, concat, ...) follow references to other files, so an upload that is secretly a
playlist could make the worker read files it must not. Only container formats are allowed,
only the `file` protocol, and the transcode pins the demuxer the probe found.
"""

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

logger = logging.getLogger(__name__)

# Container demuxers a playable upload may use (mp4/mov, mkv/webm, avi, MPEG-TS/PS, flv).
ALLOWED_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv")
# The probe decodes this many frames: enough to prove the stream decodes, cheap on any size.
PROBE_FRAMES = 2
# A probe reads headers and two frames; anything slower is a hostile or broken file.
PROBE_TIMEOUT_SECONDS = 60
# HLS segment length: 4 s is the common VOD choice (quick start, few files per minute).
SEGMENT_SECONDS = 4
# ffmpeg writes a -progress block this often; each block is one progress report and one
# chance to renew the lease.
PROGRESS_PERIOD_SECONDS = 0.5
AUDIO_BITRATE_KBPS = 96
# How much of ffmpeg's stderr is kept for the log when it fails (never shown to users).
STDERR_TAIL_CHARS = 2000

_INPUT = re.compile(r"^Input #0, ([\w,]+), from ", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #0:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})", re.MULTILINE)
_AUDIO_STREAM = re.compile(r"Stream #0:\d+.*?: Audio: ", re.MULTILINE)
_FRAMES = re.compile(r"frame=\s*(\d+)")
# The codecs ffmpeg read from the stream it wrote (x264 may pick a lower profile than asked).
_CODECS = re.compile(r'CODECS="([A-Za-z0-9.,]+)"')
_LADDER_ITEM = re.compile(r"^(\d{2,5})x(\d{2,5}):(\d{2,6})$")


class NotAVideo(ValueError):
    """The file is not a playable video; the message is safe to show to the uploader."""


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
    return {**os.environ, "GCONV_PATH": "/nonexistent/gconv"}


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


def probe(path: Path) -> ProbeResult:
    """Open the file as a container with a video stream and decode its first frames."""
    if not path.is_file() or path.stat().st_size == 0:
        raise NotAVideo("The file is empty.")
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", *_input_args(path),
        "-map", "0:v:0", "-frames:v", str(PROBE_FRAMES), "-f", "null", "-",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              env=ffmpeg_env(),
                              timeout=PROBE_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise NotAVideo("The file could not be read as a video in time.") from None
    info = done.stderr
    demuxer, duration = _INPUT.search(info), _DURATION.search(info)
    video = _VIDEO_STREAM.search(info)
    frames = [int(n) for n in _FRAMES.findall(info)]
    if done.returncode != 0 or not (demuxer and video) or not frames or max(frames) < 1:
        logger.info("probe refused %s: %s", path.name, info[-STDERR_TAIL_CHARS:])
        raise NotAVideo("The file is not a playable video.")
    seconds = 0.0
    if duration:
        hours, minutes, secs = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    if seconds <= 0:
        raise NotAVideo("The video has no duration.")
    return ProbeResult(
        demuxer=demuxer.group(1).split(",")[0],
        duration_seconds=seconds,
        width=int(video.group(1)),
        height=int(video.group(2)),
        has_audio=bool(_AUDIO_STREAM.search(info)),
    )


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
) -> Path:
    """One HLS VOD rendition (playlist + MPEG-TS segments) in out_dir; returns its playlist.

    `on_progress(fraction)` is called with ffmpeg's own progress (`-progress`, out_time over
    the probed duration); an exception it raises stops ffmpeg and propagates.
    """
    playlist = out_dir / rendition.playlist_name
    throttle = ["-readrate", str(readrate)] if readrate > 0 else []
    audio = (["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{AUDIO_BITRATE_KBPS}k", "-ac", "2"]
             if probed.has_audio else [])
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        *throttle, *_input_args(source, probed.demuxer),
        "-map", "0:v:0", *audio,
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
        env=ffmpeg_env(), preexec_fn=_die_with_parent,
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
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *_input_args(path), "-f", "null", "-t", "0",
         "-"], capture_output=True, text=True, errors="replace", env=ffmpeg_env(),
        timeout=PROBE_TIMEOUT_SECONDS, check=False,
    )
    video = _VIDEO_STREAM.search(done.stderr)
    if not video:
        raise ValueError("no video stream")
    return int(video.group(1)), int(video.group(2))


def _die_with_parent() -> None:
    # ffmpeg must not outlive a worker that was killed: the lease expires, another worker
    # starts over, and an orphaned ffmpeg would only burn CPU (Linux: PR_SET_PDEATHSIG).
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
