"""Uploaded sheets and generated reports, through Django's storage API (any backend: disk, S3).

Names are built from the tenant and the unguessable job id; nothing from the client's file
name reaches a path.
"""

import contextlib
import logging
from typing import IO

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


def save_upload(*, tenant_id: int, job_id: str, content: IO[bytes]) -> str:
    content.seek(0)
    return default_storage.save(f"ai/uploads/{int(tenant_id)}/{job_id}.xlsx", File(content))


def save_report(*, tenant_id: int, job_id: str, content: bytes) -> str:
    return default_storage.save(
        f"ai/reports/{int(tenant_id)}/{job_id}-report.xlsx", ContentFile(content)
    )


def open_file(name: str) -> IO[bytes]:
    return default_storage.open(name, "rb")


def delete_quietly(name: str) -> None:
    """Remove a file nothing refers to any more; a failure only leaves an orphan behind."""
    if not name:
        return
    with contextlib.suppress(OSError):
        default_storage.delete(name)
        return
    logger.warning("ai: could not delete %s", name)
