"""Running the wheel's ffmpeg: its binary, its environment, its input options, and a child
process under a CPU, memory and wall-clock budget (docs/explanation/architecture.md, "Stack";
docs/explanation/invariants.md, invariant 10).

The demuxer allow-list matters beyond "is it a video": ffmpeg's playlist-like demuxers
(hls, concat, ...) follow references to other files, so an upload that is secretly a
playlist could make the worker read files it must not. Only container formats are allowed,
only the `file` protocol, and the transcode pins the demuxer the probe found.
"""

import contextlib
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from academy.videos.media_limits import limited_child

# Container demuxers a playable upload may use (mp4/mov, mkv/webm, avi, MPEG-TS/PS, flv).
ALLOWED_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv")
# glibc reserves 64 MiB of address space per malloc arena (one per thread by default), which
# an address-space limit counts; two arenas keep ffmpeg's threads inside a budget set by the
# memory they use (x264 at 720p ran in 800 MiB with 2, needed 1.2 GiB without).
MALLOC_ARENA_MAX = "2"


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


def input_args(path: Path, demuxer: str | None = None) -> list[str]:
    pinned = ["-f", demuxer] if demuxer else ["-format_whitelist", ",".join(ALLOWED_DEMUXERS)]
    return [*pinned, "-protocol_whitelist", "file", "-i", str(path)]


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


def start_limited(command: list[str], *, stdout: Any, stderr: Any, cpu_seconds: int,
                  memory_bytes: int, timeout_seconds: float) -> LimitedProcess:
    """Start ffmpeg under its budget; the caller reads it and calls `finish()`."""
    process = LimitedProcess(
        command, stdout=stdout, stderr=stderr, text=True, errors="replace", env=ffmpeg_env(),
        preexec_fn=limited_child(cpu_seconds=cpu_seconds, memory_bytes=memory_bytes),
    )

    def stop_overdue() -> None:
        process.timed_out = True
        with contextlib.suppress(OSError):
            process.kill()

    process._watchdog = threading.Timer(timeout_seconds, stop_overdue)
    process._watchdog.daemon = True
    process._watchdog.start()
    return process
