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
