"""AI job services: create (and queue), start, complete, fail, progress, and the worker's run.

DESIGN.md, "Data flow" and "States". Every transition runs in one transaction on the row
locked for update and is saved through the repository (version + 1, Redis after commit);
the task is queued only after the creating transaction commits. A delivery of a job that
is already running means its worker died (late acknowledgement redelivers only unfinished
work): the run goes back to PENDING and starts again; a delivery of a finished job changes
nothing, so a job ends in exactly one terminal state.
"""

import logging
from typing import IO, Any

from django.db import transaction
from django.urls import reverse

from academy.ai import job_types, storage
from academy.ai.domain import AIJob, AIJobStatus
from academy.ai.job_types import JobContext, JobFailed, UnknownJobType
from academy.ai.models import AIJobModel, new_job_id
from academy.ai.repositories import repository
from academy.ai.tracking import KIND
from academy.ai.uploads import UploadRefused
from academy.outcomes import Outcome
from academy.queue import send_on_commit
from jobbox import RedisUnavailable, report_progress

logger = logging.getLogger(__name__)

# The worker task's registered name (academy.ai.tasks): sent by name, so this module does not
# import the tasks that call it.
RUN_TASK = "ai.run_ai_job"

# What a person reads when the job broke for a reason that is ours, not their sheet's.
UNEXPECTED_FAILURE_MESSAGE = "The job failed unexpectedly. Please try again."


class AIJobNotFound(LookupError):
    """No such job for this tenant: missing and another tenant's look the same."""


def ai_job_submit(
    *, tenant_id: int, created_by_id: int | None, job_type: str, content: IO[bytes],
    size_bytes: int,
) -> AIJob:
    """Check the upload, store it, create the PENDING job and queue it after commit.

    Raises `UploadRefused` (nothing stored, nothing queued) for an unknown type or a bad file.
    """
    try:
        kind = job_types.get(job_type)
    except UnknownJobType:
        raise UploadRefused(
            "unknown_job_type",
            f"Unknown job_type. Known types: {', '.join(job_types.names())}.",
        ) from None
    payload = kind.check_upload(content, size_bytes=size_bytes)
    job_id = new_job_id()
    upload_name = storage.save_upload(tenant_id=tenant_id, job_id=job_id, content=content)
    try:
        return ai_job_create(
            job_id=job_id, tenant_id=tenant_id, created_by_id=created_by_id,
            job_type=job_type, payload=payload, upload_name=upload_name,
        )
    except BaseException:
        storage.delete_quietly(upload_name)  # the row never committed: nothing refers to it
        raise


@transaction.atomic
def ai_job_create(
    *, tenant_id: int, created_by_id: int | None, job_type: str, payload: dict[str, Any],
    upload_name: str = "", job_id: str | None = None, queue: bool = True,
) -> AIJob:
    """A new PENDING job (its snapshot in Redis after commit), queued after commit."""
    job = AIJob(
        job_id=job_id or new_job_id(), tenant_id=tenant_id, created_by_id=created_by_id,
        job_type=job_type, payload=payload, upload_name=upload_name,
    )
    repository.save(job)
    if queue:
        send_on_commit(RUN_TASK, job.job_id)
    return job


@transaction.atomic
def ai_job_start(*, job_id: str, worker_id: str = "") -> Outcome:
    """PENDING → PROCESSING: "ok"; a dead worker's PROCESSING run again: "restarted";
    "terminal" (already DONE / FAILED: a duplicate delivery) or "not_found"."""
    job = repository.get_for_update(job_id)
    if job is None:
        return Outcome.NOT_FOUND
    if job.terminal:
        return Outcome.TERMINAL
    outcome = Outcome.OK
    if job.status == AIJobStatus.PROCESSING:
        # Back to PENDING first: a newer version whose snapshot clears the old run's progress.
        job.requeue()
        repository.save(job)
        outcome = Outcome.RESTARTED
    job.start(worker_id=worker_id)
    repository.save(job)
    return outcome


@transaction.atomic
def ai_job_complete(*, job_id: str, result: Any, report_name: str = "") -> tuple[bool, Outcome]:
    """PROCESSING → DONE with its result and report."""
    job = repository.get_for_update(job_id)
    if job is None:
        return False, Outcome.NOT_FOUND
    outcome = job.complete(result=result, report_name=report_name)
    if outcome == Outcome.OK:
        repository.save(job)
    return outcome != Outcome.INVALID_STATE, outcome


@transaction.atomic
def ai_job_fail(*, job_id: str, error_message: str) -> tuple[bool, Outcome]:
    """PENDING / PROCESSING → FAILED with a message for the submitter (never exception text)."""
    job = repository.get_for_update(job_id)
    if job is None:
        return False, Outcome.NOT_FOUND
    outcome = job.fail(error_message=error_message)
    if outcome == Outcome.OK:
        repository.save(job)
    return outcome != Outcome.INVALID_STATE, outcome


def ai_job_report_progress(
    *, job_id: str, percent: float, step_index: int | None = None,
    step_total: int | None = None, step_name: str | None = None,
    step_percent: float | None = None,
) -> bool:
    """Progress to Redis only (never the database); False if it was not recorded."""
    try:
        return report_progress(
            KIND, job_id, percent=percent, step_index=step_index, step_total=step_total,
            step_name=step_name, step_percent=step_percent,
        )
    except RedisUnavailable:
        logger.info("ai job %s: progress not recorded, Redis unavailable", job_id)
        return False


def run_ai_job(*, job_id: str, worker_id: str) -> Outcome:
    """The worker's whole job: start, run its type, store the report, DONE or FAILED."""
    started = ai_job_start(job_id=job_id, worker_id=worker_id)
    if started not in (Outcome.OK, Outcome.RESTARTED):
        return started
    job = repository.get(job_id)
    assert job is not None  # it was just started and jobs are never deleted while running
    try:
        job_type = job_types.get(job.job_type)
    except UnknownJobType:
        ai_job_fail(job_id=job_id, error_message="This job type is no longer available.")
        return Outcome.FAILED
    context = JobContext(
        job_id=job_id,
        payload=job.payload,
        open_upload=lambda: storage.open_file(job.upload_name),
        report_step=_step_reporter(job_id, job_type.steps),
    )
    try:
        output = job_type.run(context)
    except JobFailed as failure:
        ai_job_fail(job_id=job_id, error_message=failure.message)
        return Outcome.FAILED
    result = dict(output.result)
    report_name = ""
    if output.report is not None:
        report_name = storage.save_report(
            tenant_id=job.tenant_id, job_id=job_id, content=output.report
        )
        result["report_url"] = reverse("ai-job-report", args=[job_id])
    ok, outcome = ai_job_complete(job_id=job_id, result=result, report_name=report_name)
    if outcome != Outcome.OK:
        storage.delete_quietly(report_name)  # another delivery finished first
    return Outcome.DONE if ok else outcome


def _step_reporter(job_id: str, steps: tuple[str, ...]) -> job_types.StepReporter:
    def report(step_index: int, step_percent: float) -> None:
        share = 100 / len(steps)
        ai_job_report_progress(
            job_id=job_id,
            percent=share * (step_index - 1) + share * min(100.0, step_percent) / 100,
            step_index=step_index, step_total=len(steps), step_name=steps[step_index - 1],
            step_percent=step_percent,
        )

    return report


def get_ai_job_for_tenant(*, job_id: str, tenant_id: str | int) -> AIJobModel:
    """The job if it belongs to the tenant; `AIJobNotFound` for a missing one or another's."""
    job = AIJobModel.objects.filter(job_id=job_id, tenant_id=int(tenant_id)).first()
    if job is None:
        raise AIJobNotFound(job_id)
    return job
