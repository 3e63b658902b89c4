"""Video files through Django's storage API: uploads in, HLS out, HLS served back.

docs/explanation/architecture.md, "The three parts" (the reference service's videos) and "Beyond one
machine": the default storage is the local MEDIA_ROOT, S3 (django-storages) by configuration;
nothing here assumes a local disk. ffmpeg needs local files, so the worker copies the source to a
temporary folder and publishes what ffmpeg wrote back to storage.
"""

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

UPLOAD_PREFIX = "uploads/videos"
HLS_PREFIX = "hls"
# Copy buffer: large enough for throughput, small enough to stay out of the way in memory.
COPY_CHUNK_BYTES = 1024 * 1024


def save_source(*, tenant_id: int, local_path: Path) -> str:
    """Store a probed upload under an unguessable name; returns the storage name."""
    name = f"{UPLOAD_PREFIX}/{int(tenant_id)}/{uuid.uuid4().hex}"
    with local_path.open("rb") as handle:
        return default_storage.save(name, File(handle))


def delete(name: str) -> None:
    if name:
        default_storage.delete(name)


def fetch(name: str, local_path: Path) -> Path:
    """Copy a stored file to a local path (for ffmpeg)."""
    with default_storage.open(name, "rb") as src, local_path.open("wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK_BYTES)
    return local_path


def hls_prefix(*, video_id: int, attempt: int) -> str:
    """Each attempt writes its own folder, so a worker that lost its lease cannot mix files
    into the winner's output."""
    return f"{HLS_PREFIX}/{int(video_id)}/{int(attempt)}"


def publish(local_files: Iterable[Path], *, prefix: str) -> list[str]:
    """Store local files under prefix (overwriting a previous partial copy); their names."""
    names = []
    for path in local_files:
        name = f"{prefix}/{path.name}"
        if default_storage.exists(name):
            default_storage.delete(name)
        with path.open("rb") as handle:
            names.append(default_storage.save(name, File(handle)))
    return names


def delete_folder(prefix: str) -> int:
    """Delete every file under prefix (one attempt's HLS output); how many. Storage has no
    folders to remove: a local one left empty is harmless, and S3 has none."""
    try:
        _, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    return len(files)


def open_file(name: str) -> File:
    return default_storage.open(name, "rb")


def exists(name: str) -> bool:
    return default_storage.exists(name)

