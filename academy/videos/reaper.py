"""The lease reaper: videos whose worker died go back to the queue, or end FAILED.

DESIGN.md, "States" (a job whose lease ran out is re-queued, with a newer version so the
job box shows it honestly) and invariant 3. Runs periodically (CELERY_BEAT_SCHEDULE); one
bounded query over an index of PROCESSING videos by lease expiry, whatever the load.
"""

import logging
from dataclasses import dataclass, field

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
    if result.requeued or result.failed:
        logger.warning("reaper: re-queued %s, failed %s", result.requeued, result.failed)
    return result
