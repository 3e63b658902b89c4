"""The AI job as a task of Django's Tasks framework (AI_JOB_RUNNER=tasks), run by
django-tasks-db's worker (`manage.py db_worker`). As thin as the Celery task beside it
(academy.ai.tasks): the job's own service does the work, under its lease; an unexpected
exception ends the job FAILED with the generic message, as Celery's failure hook does.

The database backend has no time limit and no redelivery of its own: a job whose worker
died is found by its lease running out, and the reaper (Celery beat) queues it again
through the configured runner.
"""

import os
import socket
from importlib.util import find_spec

from academy.ai import services

if find_spec("django.tasks"):  # Django 6.x
    from django.tasks import task
else:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@task()
def run_ai_job(job_id: str) -> str:
    try:
        return services.run_ai_job(job_id=job_id, worker_id=worker_id())
    except Exception:
        services.ai_job_fail(job_id=job_id, error_message=services.UNEXPECTED_FAILURE_MESSAGE)
        raise


def worker_id() -> str:
    """The lease holder: this worker process (`db_worker:<host>:<pid>`)."""
    return f"db_worker:{socket.gethostname()}:{os.getpid()}"
