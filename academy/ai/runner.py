"""What runs an AI job (settings.AI_JOB_RUNNER): Celery, the default, or Django's Tasks
framework on django-tasks-db's database backend (`manage.py db_worker`).

Either way the job is the same row, tracked by jobbox the same way: the API, the page, the
job box and the stream cannot tell which runner graded a sheet. Celery's send goes after
commit (academy.queue); the database backend's enqueue is a row in the very transaction
that queues the job, so the two commit together or not at all.
"""

from django.conf import settings

from academy.queue import send_on_commit

# The Celery task's registered name (academy.ai.tasks.run_ai_job).
RUN_TASK = "ai.run_ai_job"


def send_run(job_id: str) -> None:
    """Have the configured runner run the job: once the current transaction commits."""
    if settings.AI_JOB_RUNNER == "tasks":
        from academy.ai.framework_tasks import run_ai_job  # imports the services: not at top

        run_ai_job.enqueue(job_id)
    else:
        send_on_commit(RUN_TASK, job_id)
