"""Media the tests make themselves: short clips from ffmpeg's own test sources (no downloads)."""

import subprocess
from pathlib import Path

from academy.videos import transcoding


def make_clip(path: Path, *, size: str = "320x180", seconds: int = 2) -> Path:
    """A clip with a test picture and a tone, H.264 + AAC in MP4."""
    subprocess.run(
        [transcoding.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", "-threads", "1", str(path)],
        check=True, timeout=60,
    )
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run([transcoding.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                    "-y", *args], check=True, timeout=60, env=transcoding.ffmpeg_env())


def make_late_frame_clip(path: Path, *, gap_seconds: int) -> Path:
    """Two H.264 frames, the second `gap_seconds` after the first (setpts, passed through):
    a few KB that a transcode at a constant frame rate would fill with hours of frames."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=0.08",
            "-vf", f"setpts=if(eq(N\\,0)\\,0\\,{gap_seconds}/TB)", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "ultrafast", str(path))
    return path


def make_png_frame(path: Path, *, size: str) -> Path:
    """One PNG frame of one colour in Matroska: tiny on disk, width x height x 4 bytes once
    decoded (the decompression bomb, at a size the test machine can afford)."""
    _ffmpeg("-f", "lavfi", "-i", f"color=c=black:s={size}", "-frames:v", "1", "-c:v", "png",
            str(path))
    return path


def make_titled_clip(path: Path, *, title: str, seconds: int = 2) -> Path:
    """A video-only clip whose title tag says `title` (ffmpeg prints it among its log lines)."""
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-metadata", f"title={title}", str(path))
    return path


def make_fast_clip(path: Path, *, rate: int, seconds: float) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={rate}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", str(path))
    return path
