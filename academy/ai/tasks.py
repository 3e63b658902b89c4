"""The AI job's Celery task: thin, its failure hook is the failure service.

Late acknowledgement (academy.settings) means a worker that dies mid-job leaves the message
unacknowledged, so the job is delivered again; `run_ai_job` restarts it and a delivery of a
finished job changes nothing. A worker that dies with its message (a whole worker killed:
the broker hands the message back only after its visibility timeout) is found by its lease
running out; `reap_ai_jobs` re-queues its job, and re-sends PENDING jobs whose send was lost.
"""

import logging
import os
from typing import Any

from celery import Task, shared_task

from academy.ai import reaper, services
from academy.queue import is_database_outage, left_to_the_reaper_if_database_down

# The reaper's registered name (settings.CELERY_BEAT_SCHEDULE sends it by name).
REAP_TASK = "ai.reap_ai_jobs"

logger = logging.getLogger(__name__)


class AIJobTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any], einfo: Any) -> None:
        job_id = kwargs.get("job_id") or (args[0] if args else None)
        if is_database_outage(exc):
            # Not the job's fault: it runs again once its lease runs out (the reaper).
            logger.warning("ai job %s: the database is unavailable; left to the reaper", job_id)
            return
        logger.error("ai job %s: task %s raised %r", job_id, task_id, exc)
        if job_id:
            with left_to_the_reaper_if_database_down(f"ai job {job_id}"):
                services.ai_job_fail(job_id=job_id,
                                     error_message=services.UNEXPECTED_FAILURE_MESSAGE)


# A 10,000-row sheet grades in seconds; ten minutes means the job is stuck. The soft limit
# raises inside the task (so the failure hook ends the job FAILED); the hard one, a minute
# later, reclaims a pool process that ignores it (prefork pool only).
SOFT_TIME_LIMIT_SECONDS = 10 * 60
HARD_TIME_LIMIT_SECONDS = SOFT_TIME_LIMIT_SECONDS + 60


@shared_task(bind=True, base=AIJobTask, name=services.RUN_TASK,
             soft_time_limit=SOFT_TIME_LIMIT_SECONDS, time_limit=HARD_TIME_LIMIT_SECONDS)
def run_ai_job(self: Task, job_id: str) -> str:
    return services.run_ai_job(job_id=job_id, worker_id=worker_id_of(self))


def worker_id_of(task: Task) -> str:
    """The lease holder: this pool process of this worker (`<hostname>:<pid>`), so a run of a
    process that died is told apart from its successor's in the same worker."""
    return f"{task.request.hostname or ''}:{os.getpid()}"


@shared_task(name=REAP_TASK, ignore_result=True)
def reap_ai_jobs() -> dict[str, list[str]]:
    """Beat's periodic reaper (settings.CELERY_BEAT_SCHEDULE)."""
    result = reaper.reap_ai_jobs()
    return {"requeued": result.requeued, "failed": result.failed, "resent": result.resent}
