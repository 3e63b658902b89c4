"""AI job services: create (and queue), start, complete, fail, progress, and the worker's run.

docs/explanation/architecture.md, "Data flow", and docs/explanation/states.md. Every transition runs
in one transaction on the row locked for update and is saved through the repository (version + 1,
Redis after commit); the task is queued only after the creating transaction commits. A delivery of a
job that is already running means its worker died (late acknowledgement redelivers only unfinished
work): the run goes back to PENDING and starts again, unless another worker holds a live lease on it
(a duplicate send: left alone); a delivery of a finished job changes nothing, so a job ends in
exactly one terminal state. A running job's lease is renewed by a heartbeat; a job whose lease ran
out is re-queued by the reaper (academy.ai.reaper), which also re-sends PENDING jobs whose send was
lost, so no job stays PENDING or PROCESSING. """

import logging
import threading
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone

from academy import job_control
from academy.ai import job_types, runner, storage
from academy.ai.domain import AIJob, AIJobStatus
from academy.ai.job_types import JobContext, JobFailed, UnknownJobType
from academy.ai.models import AIJobModel, new_job_id
from academy.ai.repositories import repository
from academy.ai.tracking import KIND
from academy.ai.uploads import UploadRefused
from academy.outcomes import Outcome
from jobbox import (
    CancelRequested,
    CancelWatch,
    RedisUnavailable,
    report_progress,
    request_cancel_on_commit,
)

logger = logging.getLogger(__name__)

# The Celery task's registered name (academy.ai.tasks): sent by name, so this module does not
# import the tasks that call it.
RUN_TASK = runner.RUN_TASK

# What a person reads when the job broke for a reason that is ours, not their sheet's.
UNEXPECTED_FAILURE_MESSAGE = "The job failed unexpectedly. Please try again."
STOPPED_ANSWERING_MESSAGE = ("The job did not finish: its worker stopped answering. "
                             "Please try again.")
# The lease is renewed once this fraction of it has passed: two renewals can fail (a slow
# database) before it runs out, as the video worker's (academy.videos.processing).
LEASE_RENEW_FRACTION = 1 / 3


class AIJobNotFound(LookupError):
    """No such job for this tenant: missing and another tenant's look the same."""


def ai_job_submit(
    *, tenant_id: int, created_by_id: int | None, job_type: str, content: IO[bytes],
    size_bytes: int, language: str | None = None,
) -> AIJob:
    """Check the upload, store it, create the PENDING job and queue it after commit; the
    job's texts (its report) are written in `language`, the asker's.

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
    if language:
        payload["language"] = language
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
        _queue(job.job_id)
    return job


def _queue(job_id: str) -> None:
    """Send the job to a worker after commit, noting when (the reaper's re-send clock)."""
    repository.mark_queued(job_id, at=timezone.now())
    runner.send_run(job_id)


@transaction.atomic
def ai_job_resend(*, job_id: str, sent_before: datetime) -> bool:
    """Send again a job still PENDING since a send before `sent_before` (that send may have
    been lost after commit; a duplicate is harmless: see `ai_job_start`). False if it moved
    on meanwhile."""
    resent = repository.mark_queued_again(job_id, sent_before=sent_before, at=timezone.now())
    if resent:
        runner.send_run(job_id)
    return resent


@transaction.atomic
def ai_job_start(*, job_id: str, worker_id: str = "", lease_seconds: int | None = None) -> Outcome:
    """PENDING → PROCESSING under a lease: "ok"; a dead worker's PROCESSING run again:
    "restarted"; "leased" (another worker's run holds a live lease: a duplicate send),
    "terminal" (already DONE / FAILED: a duplicate delivery) or "not_found"."""
    job = repository.get_for_update(job_id)
    if job is None:
        return Outcome.NOT_FOUND
    if job.terminal:
        return Outcome.TERMINAL
    now = timezone.now()
    outcome = Outcome.OK
    if job.status == AIJobStatus.PROCESSING:
        if _run_alive(job, worker_id=worker_id, now=now):
            logger.info("ai job %s is leased by %s; %s leaves it", job_id, job.leased_by,
                        worker_id)
            return Outcome.LEASED
        # Back to PENDING first: a newer version whose snapshot clears the old run's progress.
        job.requeue()
        repository.save(job)
        outcome = Outcome.RESTARTED
    seconds = settings.AI_LEASE_SECONDS if lease_seconds is None else lease_seconds
    job.start(worker_id=worker_id, leased_until=now + timedelta(seconds=seconds))
    repository.save(job)
    return outcome


def _run_alive(job: AIJob, *, worker_id: str, now: datetime) -> bool:
    """Whether a PROCESSING job's run may still be going: its lease is live and held by a
    worker other than this one. A redelivery to the worker holding it means its pool process
    died (late acknowledgement redelivers unfinished work only)."""
    if job.leased_until is None or job.leased_until <= now:
        return False
    return _worker_of(job.leased_by) != _worker_of(worker_id)


def _worker_of(worker_id: str) -> str:
    """The Celery worker of a lease holder id `<hostname>:<pid>` (`academy.ai.tasks`)."""
    return worker_id.rsplit(":", 1)[0]


def ai_job_renew_lease(*, job_id: str, worker_id: str, lease_seconds: int) -> bool:
    """The running worker's heartbeat: extend its lease; False if it lost it (the reaper
    re-queued the job)."""
    return repository.renew_lease(
        job_id, worker_id=worker_id, until=timezone.now() + timedelta(seconds=lease_seconds))


@transaction.atomic
def ai_job_requeue_expired(*, job_id: str, max_attempts: int, now: datetime) -> Outcome:
    """The reaper's transition for a job whose lease ran out before `now` (its worker died).

    "requeued": → PENDING with a newer version, sent to a worker after commit; "failed": it
    used up `max_attempts`, → FAILED with a message for people; "skipped": not expired (any
    more), e.g. its worker renewed the lease or finished meanwhile.
    """
    job = repository.get_for_update(job_id)
    if (job is None or job.status != AIJobStatus.PROCESSING or job.leased_until is None
            or job.leased_until >= now):
        return Outcome.SKIPPED
    logger.warning("ai job %s: lease of %s expired at %s (attempt %d of %d)", job_id,
                   job.leased_by, job.leased_until, job.attempts, max_attempts)
    if job.attempts - job.attempts_before_run >= max_attempts:  # this run's starts only
        job.fail(error_message=STOPPED_ANSWERING_MESSAGE)
        _keep_log(job)
        repository.save(job)
        return Outcome.FAILED
    job.requeue()
    repository.save(job)
    _queue(job_id)
    return Outcome.REQUEUED


@transaction.atomic
def ai_job_complete(*, job_id: str, result: Any, report_name: str = "",
                    worker_id: str | None = None) -> tuple[bool, Outcome]:
    """PROCESSING → DONE with its result and report; "lease_lost" if `worker_id` no longer
    holds the run (the reaper gave it to another worker)."""
    job = repository.get_for_update(job_id)
    if job is None:
        return False, Outcome.NOT_FOUND
    if not job.terminal and not job.lease_held_by(worker_id):
        return False, Outcome.LEASE_LOST
    outcome = job.complete(result=result, report_name=report_name)
    if outcome == Outcome.OK:
        job_control.log_line(KIND, job_id, "done")
        _keep_log(job)
        repository.save(job)
    return outcome != Outcome.INVALID_STATE, outcome


@transaction.atomic
def ai_job_fail(*, job_id: str, error_message: str,
                worker_id: str | None = None) -> tuple[bool, Outcome]:
    """PENDING / PROCESSING → FAILED with a message for the submitter (never exception text);
    "lease_lost" if `worker_id` no longer holds the run."""
    job = repository.get_for_update(job_id)
    if job is None:
        return False, Outcome.NOT_FOUND
    if not job.terminal and not job.lease_held_by(worker_id):
        return False, Outcome.LEASE_LOST
    outcome = job.fail(error_message=error_message)
    if outcome == Outcome.OK:
        job_control.log_line(KIND, job_id, f"failed: {job.error_message}")
        _keep_log(job)
        repository.save(job)
    return outcome != Outcome.INVALID_STATE, outcome


@transaction.atomic
def ai_job_cancel(*, job_id: str, tenant_id: int) -> Outcome:
    """PENDING / PROCESSING → CANCELLED for the job's tenant: "ok", "idempotent" (already
    CANCELLED), "terminal" (DONE or FAILED: too late), "not_found" (missing or another
    tenant's). The row lock decides a race with the worker's end: one terminal state. After
    commit the cancel flag stops the worker between two rows (jobbox.control)."""
    job = repository.get_for_update(job_id)
    if job is None or job.tenant_id != int(tenant_id):
        return Outcome.NOT_FOUND
    outcome = job.cancel()
    if outcome != Outcome.OK:
        return outcome
    job_control.log_line(KIND, job_id, f"attempt {job.attempt}: cancelled on request")
    _keep_log(job)
    repository.save(job)
    request_cancel_on_commit(KIND, job_id)
    return Outcome.OK


@transaction.atomic
def ai_job_retry(*, job_id: str, tenant_id: int) -> Outcome:
    """FAILED / CANCELLED → PENDING as the next attempt, queued after commit with the same
    limits and lease as a first run: "ok", "invalid_state", "retry_limit", "not_found"."""
    job = repository.get_for_update(job_id)
    if job is None or job.tenant_id != int(tenant_id):
        return Outcome.NOT_FOUND
    outcome = job.retry(max_attempt=job_control.MAX_ATTEMPT)
    if outcome != Outcome.OK:
        return outcome
    repository.save(job)
    job_control.start_retry_on_commit(KIND, job_id, earlier_log=job.log, attempt=job.attempt)
    _queue(job_id)
    return Outcome.OK


def _keep_log(job: AIJob) -> None:
    """The run's log from Redis onto the row, saved with the transition that ends it."""
    job.log = job_control.final_log(KIND, job.job_id, stored=job.log)


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
    """The worker's whole job: start, run its type under a heartbeat (the lease renewed),
    store the report, DONE or FAILED."""
    started = ai_job_start(job_id=job_id, worker_id=worker_id)
    if started not in (Outcome.OK, Outcome.RESTARTED):
        return started
    with LeaseHeartbeat(job_id=job_id, worker_id=worker_id,
                        lease_seconds=settings.AI_LEASE_SECONDS):
        try:
            return _run_started(job_id, worker_id)
        except CancelRequested:
            # The cancel transition ended the job already; nothing was stored for this run.
            job_control.log_line(KIND, job_id, "stopped between rows")
            repository.keep_log(job_id, job_control.final_log(KIND, job_id, stored=[]))
            return Outcome.CANCELLED


def _run_started(job_id: str, worker_id: str) -> Outcome:
    job = repository.get(job_id)
    assert job is not None  # it was just started and jobs are never deleted while running
    try:
        job_type = job_types.get(job.job_type)
    except UnknownJobType:
        ai_job_fail(job_id=job_id, error_message="This job type is no longer available.",
                    worker_id=worker_id)
        return Outcome.FAILED
    context = JobContext(
        job_id=job_id,
        payload=job.payload,
        open_upload=lambda: storage.open_file(job.upload_name),
        report_step=_step_reporter(job_id, job_type.steps),
        check_cancel=CancelWatch(KIND, job_id).check,
    )
    job_control.log_line(KIND, job_id, f"attempt {job.attempt}: started by {worker_id}")
    try:
        output = job_type.run(context)
    except JobFailed as failure:
        ai_job_fail(job_id=job_id, error_message=failure.message, worker_id=worker_id)
        return Outcome.FAILED
    result = dict(output.result)
    report_name = ""
    if output.report is not None:
        report_name = storage.save_report(
            tenant_id=job.tenant_id, job_id=job_id, content=output.report
        )
        result["report_url"] = reverse("ai-job-report", args=[job_id])
    ok, outcome = ai_job_complete(job_id=job_id, result=result, report_name=report_name,
                                  worker_id=worker_id)
    if outcome != Outcome.OK:
        storage.delete_quietly(report_name)  # another delivery finished first
    return Outcome.DONE if ok else outcome


class LeaseHeartbeat:
    """Renews a running job's lease every third of it from a thread of its own, so a job that
    computes without reporting progress keeps its lease, and one whose process died loses it
    within AI_LEASE_SECONDS (the reaper then re-queues it)."""

    def __init__(self, *, job_id: str, worker_id: str, lease_seconds: int) -> None:
        self.job_id, self.worker_id, self.lease_seconds = job_id, worker_id, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"ai-lease-{job_id}")

    def __enter__(self) -> "LeaseHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.lease_seconds * LEASE_RENEW_FRACTION):
                if not ai_job_renew_lease(job_id=self.job_id, worker_id=self.worker_id,
                                          lease_seconds=self.lease_seconds):
                    logger.warning("ai job %s: %s lost its lease", self.job_id, self.worker_id)
                    return  # its result will be refused; the new holder's run counts
        except Exception:
            logger.exception("ai job %s: lease renewal failed", self.job_id)
        finally:
            connections.close_all()  # this thread's own connection


def _step_reporter(job_id: str, steps: tuple[str, ...]) -> job_types.StepReporter:
    logged = [0]  # the step last named in the log

    def report(step_index: int, step_percent: float) -> None:
        if step_index != logged[0]:
            logged[0] = step_index
            job_control.log_line(KIND, job_id,
                                 f"step {step_index}/{len(steps)}: {steps[step_index - 1]}")
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
