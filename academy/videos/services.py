"""Video transitions: the seed's `mark_processing`, `complete_video`, `fail_video`, on jobbox.

Each runs in one transaction on the row locked for update, bumps the version through
`jobbox.writers.save_transition`, and so reaches Redis only after commit. Transitions are
idempotent: a duplicate delivery answers "idempotent" and changes nothing.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from academy.videos.models import Video
from jobbox import progress
from jobbox.client import RedisUnavailable
from jobbox.writers import publish_on_commit, save_transition

logger = logging.getLogger(__name__)

# A worker renews its lease while it works; a lease this long survives a slow step but
# lets the reaper hand a dead worker's video to another within minutes.
DEFAULT_LEASE_SECONDS = 5 * 60
# The seed stores at most this much of a failure reason.
ERROR_REASON_MAX_CHARS = 2000


def get_video_for_update(video_id: int) -> Video | None:
    return Video.objects.select_for_update().filter(pk=video_id).first()


@transaction.atomic
def create_video(
    *, tenant_id: int, uploaded_by_id: int | None, title: str, source: str = ""
) -> Video:
    """A new UPLOADED video, its snapshot in Redis after commit (polls of it cost no SQL)."""
    video = Video.objects.create(
        tenant_id=tenant_id, uploaded_by_id=uploaded_by_id, title=title, source=source
    )
    publish_on_commit(video)
    return video


@transaction.atomic
def mark_processing(
    video_id: int, *, worker_id: str = "", lease_seconds: int = DEFAULT_LEASE_SECONDS
) -> bool:
    """UPLOADED → PROCESSING under a lease; True if the video is (now) PROCESSING."""
    video = get_video_for_update(video_id)
    if not video:
        return False
    if video.status == Video.Status.PROCESSING:
        return True
    if video.status != Video.Status.UPLOADED:
        logger.warning("Cannot mark video %s as PROCESSING: status=%s", video_id, video.status)
        return False
    now = timezone.now()
    video.status = Video.Status.PROCESSING
    video.processing_started_at = now
    video.leased_by = worker_id
    video.leased_until = now + timedelta(seconds=lease_seconds)
    video.attempts += 1
    save_transition(video, update_fields=[
        "status", "processing_started_at", "leased_by", "leased_until", "attempts",
    ])
    return True


@transaction.atomic
def complete_video(video_id: int, hls_path: str, duration: int | None = None) -> tuple[bool, str]:
    """→ READY with its HLS path and duration; the lease is released."""
    video = get_video_for_update(video_id)
    if not video:
        return False, "not_found"
    if video.status == Video.Status.READY and bool(video.hls_path):
        return True, "idempotent"
    video.hls_path = str(hls_path)
    if duration is not None and duration >= 0:
        video.duration = int(duration)
    video.status = Video.Status.READY
    video.error_reason = ""
    _release_lease(video)
    save_transition(video, update_fields=[
        "hls_path", "duration", "status", "error_reason", "leased_by", "leased_until",
    ])
    return True, "ok"


@transaction.atomic
def fail_video(video_id: int, reason: str) -> tuple[bool, str]:
    """→ FAILED with its reason; the lease is released."""
    video = get_video_for_update(video_id)
    if not video:
        return False, "not_found"
    if video.status == Video.Status.FAILED:
        return True, "idempotent"
    video.status = Video.Status.FAILED
    video.error_reason = str(reason)[:ERROR_REASON_MAX_CHARS]
    _release_lease(video)
    save_transition(video, update_fields=["status", "error_reason", "leased_by", "leased_until"])
    return True, "ok"


@transaction.atomic
def requeue_video(video_id: int) -> tuple[bool, str]:
    """FAILED or PROCESSING (a dead worker's) → UPLOADED, with a newer version so Redis follows."""
    video = get_video_for_update(video_id)
    if not video:
        return False, "not_found"
    if video.status == Video.Status.UPLOADED:
        return True, "idempotent"
    if video.status == Video.Status.READY:
        return False, "invalid_state"
    video.status = Video.Status.UPLOADED
    video.error_reason = ""
    _release_lease(video)
    save_transition(video, update_fields=["status", "error_reason", "leased_by", "leased_until"])
    return True, "ok"


def _release_lease(video: Video) -> None:
    video.leased_by = ""
    video.leased_until = None


def report_video_progress(
    video_id: int,
    *,
    percent: float,
    step_index: int | None = None,
    step_total: int | None = None,
    step_name: str | None = None,
    step_percent: float | None = None,
) -> bool:
    """Progress to Redis only (never the database); False if it was not recorded."""
    try:
        return progress.report_progress(
            "video", str(video_id), percent=percent, step_index=step_index,
            step_total=step_total, step_name=step_name, step_percent=step_percent,
        )
    except RedisUnavailable:
        logger.info("video %s: progress not recorded, Redis unavailable", video_id)
        return False
