"""ffmpeg writing the HLS rendition ladder of a measured video (docs/explanation/architecture.md,
"The three parts": the reference service's video worker).

The source was measured first (academy.videos.probing): each rendition's output stops at the probed
duration and the frame-rate limit, pins the demuxer the probe found, and runs under the CPU budget
of that duration, the memory budget and a wall-clock timeout (academy.videos.media_limits;
docs/explanation/invariants.md, invariant 10). The probe's names stay importable from here, as
callers have always used them.
"""

import contextlib
import logging
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from academy.videos.ffmpeg import ffmpeg_env, ffmpeg_exe, input_args
from academy.videos.media_limits import (
    MediaLimits,
    limited_child,
    ran_out_of_cpu,
    wait_measuring_cpu,
)
from academy.videos.probing import NotAVideo, ProbeResult, probe, probe_size

__all__ = [
    "NotAVideo", "ProbeResult", "Rendition", "TranscodeFailed", "ffmpeg_env", "ffmpeg_exe",
    "master_playlist", "parse_ladder", "probe", "probe_size", "segment_names",
    "transcode_rendition",
]

logger = logging.getLogger(__name__)

# HLS segment length: 4 s is the common VOD choice (quick start, few files per minute).
SEGMENT_SECONDS = 4
# ffmpeg writes a -progress block this often; each block is one progress report and one
# chance to renew the lease.
PROGRESS_PERIOD_SECONDS = 0.5
AUDIO_BITRATE_KBPS = 96
# ffmpeg's -progress fields that summarise a rendition written, in the job's log.
SUMMARY_KEYS = ("frame", "fps", "total_size", "speed")
# How much of ffmpeg's stderr is kept for the log when it fails (never shown to users).
STDERR_TAIL_CHARS = 2000

# The codecs ffmpeg read from the stream it wrote (x264 may pick a lower profile than asked).
_CODECS = re.compile(r'CODECS="([A-Za-z0-9.,]+)"')
_LADDER_ITEM = re.compile(r"^(\d{2,5})x(\d{2,5}):(\d{2,6})$")


class TranscodeFailed(RuntimeError):
    """ffmpeg could not write a rendition; the message is safe to store as the error reason."""


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
    on_summary: Callable[[str], None] | None = None,
) -> Path:
    """One HLS VOD rendition (playlist + MPEG-TS segments) in out_dir; returns its playlist.
    `on_summary(line)` hears ffmpeg's own summary of a rendition written (its last progress
    block: frames, speed, bytes), for the job's log.

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
        *throttle, "-max_pixels", str(limits.max_pixels), *input_args(source, probed.demuxer),
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
    cpu_used = 0.0
    last_block: dict[str, str] = {}
    try:
        for line in process.stdout:
            key, _, value = line.strip().partition("=")
            if key in SUMMARY_KEYS:
                last_block[key] = value
            if key == "out_time_us" and value.isdigit():
                on_progress(min(1.0, int(value) / 1e6 / probed.duration_seconds))
        cpu_used = wait_measuring_cpu(process)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr_reader.join(timeout=5)
    if timed_out.is_set():
        raise TranscodeFailed(
            f"Transcoding the {rendition.name} rendition took longer than {timeout_seconds} s.")
    if ran_out_of_cpu(process.returncode, cpu_used, cpu_seconds):
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
    if on_summary is not None:
        on_summary(f"ffmpeg {rendition.name}: " + ", ".join(
            f"{key}={last_block[key]}" for key in SUMMARY_KEYS if key in last_block))
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
