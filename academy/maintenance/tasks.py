"""Periodic upkeep of the reference service, run by Celery beat (docs/explanation/invariants.md,
invariant 8).

Thin by design: each task calls one library function.
"""

import logging

from celery import shared_task

from jobbox import RedisUnavailable, reconcile_recent

logger = logging.getLogger(__name__)

# Beat's interval for `reconcile_job_snapshots`, in settings.CELERY_BEAT_SCHEDULE: with the
# retry after commit, it bounds how long a lost cache write stays visible (docs/how-to/outages.md).
RECONCILE_INTERVAL_SECONDS = 30.0


@shared_task(name="academy.maintenance.reconcile_job_snapshots", ignore_result=True)
def reconcile_job_snapshots() -> dict[str, int]:
    """Store again every recently changed job whose Redis snapshot is missing or older."""
    try:
        report = reconcile_recent()
    except RedisUnavailable:
        # Nothing to repair into; the next run's window covers this one's rows.
        logger.info("reconcile skipped: Redis unavailable")
        return {}
    return report.repaired
