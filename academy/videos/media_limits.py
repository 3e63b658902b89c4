"""What one video may cost, and the budget every ffmpeg process runs under
(docs/explanation/invariants.md, invariant 10: "media ... are measured by what they really hold").

A container's header and its text metadata can lie (a 3 KB file said 2 s and held 10 h of
timestamps; a title tag imitated ffmpeg's `Duration:` line), so media is measured from
ffmpeg's structured `framecrc` output: one line per packet with its stream, timestamps and
duration, and a header naming each stream's time base and frame size. Whatever the file
holds, each ffmpeg process also runs under a CPU-time and an address-space limit
(`setrlimit` in the child) and a wall-clock timeout in the parent.

Leaf module: settings in, limits and parsed streams out; ffmpeg itself runs in
`academy.videos.transcoding`.
"""

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from django.conf import settings

# framecrc prints AV_NOPTS_VALUE (a packet without a timestamp) as INT64_MIN.
NO_TIMESTAMP = -(2**63)
# The hard CPU limit sits this far above the soft one: SIGXCPU first, SIGKILL if ignored.
CPU_HARD_MARGIN_SECONDS = 1
# Signals that mean "the CPU budget ran out" (soft limit, then the hard one).
CPU_LIMIT_SIGNALS = (signal.SIGXCPU, signal.SIGKILL)


class MediaRefused(ValueError):
    """A file that is not a video we will transcode; `code` is stable, the message is safe to
    show to the uploader."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The limits of settings.py's VIDEO_* settings (docs/how-to/limits.md)."""

    max_duration_seconds: float
    max_pixels: int  # per frame: width x height
    max_frame_rate: float  # frames per second, measured over the stream's packets
    memory_bytes: int  # address space of one ffmpeg process
    probe_cpu_seconds: int
    probe_timeout_seconds: int
    transcode_cpu_base_seconds: int
    transcode_cpu_seconds_per_media_second: float

    @classmethod
    def from_settings(cls) -> "MediaLimits":
        return cls(
            max_duration_seconds=float(settings.VIDEO_MAX_DURATION_SECONDS),
            max_pixels=int(settings.VIDEO_MAX_PIXELS),
            max_frame_rate=float(settings.VIDEO_MAX_FRAME_RATE),
            memory_bytes=int(settings.VIDEO_FFMPEG_MEMORY_BYTES),
            probe_cpu_seconds=int(settings.VIDEO_PROBE_CPU_SECONDS),
            probe_timeout_seconds=int(settings.VIDEO_PROBE_TIMEOUT_SECONDS),
            transcode_cpu_base_seconds=int(settings.VIDEO_FFMPEG_CPU_BASE_SECONDS),
            transcode_cpu_seconds_per_media_second=float(
                settings.VIDEO_FFMPEG_CPU_SECONDS_PER_MEDIA_SECOND),
        )

    def transcode_cpu_seconds(self, duration_seconds: float) -> int:
        """The CPU budget of one rendition's transcode of this many seconds of media."""
        return int(self.transcode_cpu_base_seconds
                   + self.transcode_cpu_seconds_per_media_second * duration_seconds)

    @property
    def max_video_packets(self) -> int:
        """More video packets than the longest, fastest video allowed could hold: the scan
        stops there instead of reading on."""
        return int(self.max_duration_seconds * self.max_frame_rate) + 1


def limited_child(*, cpu_seconds: int, memory_bytes: int) -> Callable[[], None]:
    """A `preexec_fn`: the child gets its CPU and memory budget and dies with its parent."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU,
                           (cpu_seconds, cpu_seconds + CPU_HARD_MARGIN_SECONDS))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        die_with_parent()

    return apply


def die_with_parent() -> None:
    # ffmpeg must not outlive a worker that was killed: the lease expires, another worker
    # starts over, and an orphaned ffmpeg would only burn CPU (Linux: PR_SET_PDEATHSIG).
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


# The kernel sends SIGXCPU by its own tick-based count of the child's CPU; the rusage a parent
# reads afterwards was seen here up to 6 % lower on a loaded machine (0.94-0.96 s for a 1 s
# limit). A child that failed having used this share of its budget ran out of it.
CPU_ACCOUNTING_SHARE = 0.9


def ran_out_of_cpu(returncode: int | None, cpu_used: float = 0.0,
                   cpu_budget: float | None = None) -> bool:
    """Whether a child stopped on its CPU budget: killed by the limit's signal, or (ffmpeg
    catches SIGXCPU and exits 255 by itself) failed having used the whole budget."""
    if returncode is not None and -returncode in CPU_LIMIT_SIGNALS:
        return True
    return (cpu_budget is not None and returncode not in (None, 0)
            and cpu_used >= cpu_budget * CPU_ACCOUNTING_SHARE)


def wait_measuring_cpu(process: "subprocess.Popen[str]") -> float:
    """Wait for `process`; the CPU seconds it used, from its own resource usage (not this
    worker's children as a whole: other transcodes may run beside it)."""
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except ChildProcessError:  # reaped meanwhile (a watchdog's kill polls it)
        process.wait()
        return 0.0
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Track:
    """One stream as framecrc describes it: its header and the span of its packets."""

    time_base: Fraction = Fraction(1)
    media_type: str = ""
    width: int = 0
    height: int = 0
    first: int | None = None  # smallest timestamp, in time_base units
    end: int | None = None  # largest timestamp plus its packet's duration
    packets: int = 0

    def seconds(self) -> tuple[float, float] | None:
        if self.first is None or self.end is None:
            return None
        return float(self.first * self.time_base), float(self.end * self.time_base)


@dataclass
class FrameCRC:
    """framecrc output parsed line by line: per stream header fields and packet spans."""

    tracks: dict[int, Track] = field(default_factory=dict)

    def feed(self, line: str) -> None:
        if line.startswith("#"):
            self._header(line)
        elif line.strip():
            self._packet(line)

    def _track(self, text: str) -> Track:
        return self.tracks.setdefault(int(text), Track())

    def _header(self, line: str) -> None:
        name, _, rest = line[1:].partition(" ")
        index, _, value = rest.partition(":")
        if not index.strip().isdigit():
            return  # "#software: ..." and other lines about the whole output
        value = value.strip()
        track = self._track(index)
        if name == "tb":
            num, _, den = value.partition("/")
            track.time_base = Fraction(int(num), int(den))
        elif name == "media_type":
            track.media_type = value
        elif name == "dimensions":
            width, _, height = value.partition("x")
            track.width, track.height = int(width), int(height)

    def _packet(self, line: str) -> None:
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < 5:
            return
        track = self._track(fields[0])
        dts, pts, duration = int(fields[1]), int(fields[2]), int(fields[3])
        stamp = pts if pts != NO_TIMESTAMP else dts
        track.packets += 1
        if stamp == NO_TIMESTAMP:
            return
        track.first = stamp if track.first is None else min(track.first, stamp)
        end = stamp + max(duration, 0)
        track.end = end if track.end is None else max(track.end, end)

    def video(self) -> Track | None:
        return next((t for t in self.tracks.values() if t.media_type == "video"), None)

    def has_audio(self) -> bool:
        return any(t.media_type == "audio" and t.packets for t in self.tracks.values())

    def duration_seconds(self) -> float:
        """From the earliest timestamp of any stream to the latest end of any stream."""
        spans = [s for s in (t.seconds() for t in self.tracks.values()) if s is not None]
        if not spans:
            return 0.0
        return max(end for _, end in spans) - min(first for first, _ in spans)
