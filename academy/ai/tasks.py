"""The AI job's Celery task: thin (STYLE.md, 7), its failure hook is the failure service.

Late acknowledgement (academy.settings) means a worker that dies mid-job leaves the message
unacknowledged, so the job is delivered again; `run_ai_job` restarts it and a delivery of a
finished job changes nothing.
"""

import logging
from typing import Any

from celery import Task, shared_task

from academy.ai import services

logger = logging.getLogger(__name__)


class AIJobTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any], einfo: Any) -> None:
        job_id = kwargs.get("job_id") or (args[0] if args else None)
        logger.error("ai job %s: task %s raised %r", job_id, task_id, exc)
        if job_id:
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
    return services.run_ai_job(job_id=job_id, worker_id=self.request.hostname or "")
