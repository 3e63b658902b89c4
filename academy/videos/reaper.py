"""The lease reaper: videos whose worker died go back to the queue, or end FAILED.

docs/explanation/states.md (a job whose lease ran out is re-queued, with a newer version so the
job box shows it honestly) and invariants 3 and 8 (a lost write is repaired: here a queue
send lost after commit). Runs periodically (CELERY_BEAT_SCHEDULE); two bounded queries over
partial indexes (PROCESSING by lease expiry, UPLOADED by last send), whatever the load.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from academy.videos import services
from academy.videos.models import Video

logger = logging.getLogger(__name__)

# Videos handled per run; more wait for the next run (seconds later), so one run stays short.
REAP_BATCH_SIZE = 100


@dataclass
class ReapResult:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)


def reap_expired_leases() -> ReapResult:
    now = timezone.now()
    expired = list(
        Video.objects.filter(status=Video.Status.PROCESSING, leased_until__lt=now)
        .order_by("leased_until")
        .values_list("pk", flat=True)[:REAP_BATCH_SIZE]
    )
    result = ReapResult()
    for video_id in expired:
        outcome = services.requeue_expired_video(
            video_id, max_attempts=settings.VIDEO_MAX_ATTEMPTS, now=now)
        if outcome == "requeued":
            result.requeued.append(video_id)
        elif outcome == "failed":
            result.failed.append(video_id)
    queued_before = now - timedelta(seconds=settings.VIDEO_RESEND_AFTER_SECONDS)
    waiting = list(
        Video.objects.filter(status=Video.Status.UPLOADED, queued_at__lt=queued_before)
        .order_by("queued_at")
        .values_list("pk", flat=True)[:REAP_BATCH_SIZE]
    )
    result.resent = [video_id for video_id in waiting
                     if services.resend_transcode(video_id, queued_before=queued_before)]
    if result.requeued or result.failed or result.resent:
        logger.warning("reaper: re-queued %s, failed %s, re-sent %s",
                       result.requeued, result.failed, result.resent)
    return result
