"""The AI job reaper: no job stays PENDING or PROCESSING forever.

docs/explanation/states.md (a job whose lease ran out is re-queued, with a newer version so the job
box shows it honestly) and invariant 8 (a lost write is repaired: here a queue send lost
after commit). As the video reaper (academy.videos.reaper): runs every AI_REAP_INTERVAL_SECONDS
from beat; two bounded queries over partial indexes (PROCESSING by lease expiry, PENDING by
last send), whatever the load. A running job's worker renews its lease every third of
AI_LEASE_SECONDS (academy.ai.services.LeaseHeartbeat), so a worker that died is found within
AI_LEASE_SECONDS + AI_REAP_INTERVAL_SECONDS (30 s by default, BullMQ's stalled check).
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from academy.ai import services
from academy.ai.repositories import repository

logger = logging.getLogger(__name__)

# Jobs handled per run; more wait for the next run (seconds later), so one run stays short.
REAP_BATCH_SIZE = 100


@dataclass
class ReapResult:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


def reap_ai_jobs() -> ReapResult:
    now = timezone.now()
    result = ReapResult()
    for job_id in repository.expired_leases(now=now, limit=REAP_BATCH_SIZE):
        outcome = services.ai_job_requeue_expired(
            job_id=job_id, max_attempts=settings.AI_MAX_ATTEMPTS, now=now)
        if outcome == "requeued":
            result.requeued.append(job_id)
        elif outcome == "failed":
            result.failed.append(job_id)
    sent_before = now - timedelta(seconds=settings.AI_RESEND_AFTER_SECONDS)
    result.resent = [job_id for job_id in repository.waiting_since(sent_before=sent_before,
                                                                   limit=REAP_BATCH_SIZE)
                     if services.ai_job_resend(job_id=job_id, sent_before=sent_before)]
    if result.requeued or result.failed or result.resent:
        logger.warning("ai reaper: re-queued %s, failed %s, re-sent %s",
                       result.requeued, result.failed, result.resent)
    return result
