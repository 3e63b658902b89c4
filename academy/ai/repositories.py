"""The seed's AI job repository: `save(job)` on top of jobbox (seed, section 3).

`save` writes the row and, only after commit, its snapshot to Redis (`job:{id}:status`,
the seed's TTLs: 2 h running, 1 h finished): a new job is published as created, and every
change is a transition through `jobbox.save_transition` (version + 1, compare-and-set
in Redis). docs/explanation/invariants.md, invariants 2 and 3.
"""

from datetime import datetime

from django.db import transaction

from academy.ai.domain import AIJob, AIJobStatus
from academy.ai.models import AIJobModel
from jobbox import publish_on_commit, save_transition

# Domain attribute → model field, for everything a transition may change.
_MUTABLE_FIELDS = {
    "status": "status",
    "payload": "payload",
    "result": "result",
    "error_message": "error_message",
    "report_name": "report",
    "leased_by": "leased_by",
    "leased_until": "leased_until",
    "attempts": "attempts",
    "attempt": "attempt",
    "attempts_before_run": "attempts_before_run",
    "previous_attempts": "previous_attempts",
    "log": "log",
}


class ConcurrentUpdate(RuntimeError):
    """The row changed since the job was loaded: load it again (for update) and retry."""


class AIJobRepository:
    def get(self, job_id: str) -> AIJob | None:
        row = AIJobModel.objects.filter(job_id=job_id).first()
        return to_domain(row) if row else None

    def get_for_update(self, job_id: str) -> AIJob | None:
        """Call inside `transaction.atomic()`: the row stays locked until commit."""
        row = AIJobModel.objects.select_for_update().filter(job_id=job_id).first()
        return to_domain(row) if row else None

    @transaction.atomic
    def save(self, job: AIJob) -> None:
        """Create the job, or save what changed as one transition; Redis follows on commit."""
        row = AIJobModel.objects.select_for_update().filter(job_id=job.job_id).first()
        if row is None:
            row = AIJobModel.objects.create(
                job_id=job.job_id,
                tenant_id=job.tenant_id,
                created_by_id=job.created_by_id,
                job_type=job.job_type,
                status=job.status.value,
                payload=job.payload,
                result=job.result,
                error_message=job.error_message,
                upload=job.upload_name,
                report=job.report_name,
                leased_by=job.leased_by,
                leased_until=job.leased_until,
                attempts=job.attempts,
                attempt=job.attempt,
                attempts_before_run=job.attempts_before_run,
                previous_attempts=job.previous_attempts,
                log=job.log,
            )
            publish_on_commit(row)
            job.version = row.version
            return
        if job.version != row.version:
            raise ConcurrentUpdate(job.job_id)
        current = to_domain(row)
        changed = [
            model_field
            for attr, model_field in _MUTABLE_FIELDS.items()
            if getattr(job, attr) != getattr(current, attr)
        ]
        if not changed:
            return
        for attr, model_field in _MUTABLE_FIELDS.items():
            setattr(row, model_field, getattr(job, attr))
        row.status = job.status.value
        save_transition(row, update_fields=changed)
        job.version = row.version

    # --- Queue and lease bookkeeping: not transitions (nothing a poll shows changes, so no
    # version bump and no Redis write), single conditional UPDATEs.

    def mark_queued(self, job_id: str, *, at: datetime) -> None:
        AIJobModel.objects.filter(job_id=job_id).update(queued_at=at)

    def mark_queued_again(self, job_id: str, *, sent_before: datetime, at: datetime) -> bool:
        """Note a new send of a job still PENDING since a send before `sent_before`."""
        return bool(AIJobModel.objects.filter(
            job_id=job_id, status=AIJobStatus.PENDING.value, queued_at__lt=sent_before,
        ).update(queued_at=at))

    def renew_lease(self, job_id: str, *, worker_id: str, until: datetime) -> bool:
        """Extend the lease `worker_id` holds; False if it no longer holds it."""
        return bool(AIJobModel.objects.filter(
            job_id=job_id, status=AIJobStatus.PROCESSING.value, leased_by=worker_id,
        ).update(leased_until=until))

    def keep_log(self, job_id: str, lines: list[str]) -> None:
        """The log of a job that ended, with the lines its worker wrote after the end."""
        if lines:
            AIJobModel.objects.filter(job_id=job_id).update(log=lines)

    def expired_leases(self, *, now: datetime, limit: int) -> list[str]:
        """PROCESSING jobs whose lease ran out, oldest first (one query, a partial index)."""
        return list(AIJobModel.objects.filter(
            status=AIJobStatus.PROCESSING.value, leased_until__lt=now,
        ).order_by("leased_until").values_list("job_id", flat=True)[:limit])

    def waiting_since(self, *, sent_before: datetime, limit: int) -> list[str]:
        """PENDING jobs last sent before `sent_before`, oldest first (one query, a partial
        index)."""
        return list(AIJobModel.objects.filter(
            status=AIJobStatus.PENDING.value, queued_at__lt=sent_before,
        ).order_by("queued_at").values_list("job_id", flat=True)[:limit])


def to_domain(row: AIJobModel) -> AIJob:
    return AIJob(
        job_id=row.job_id,
        tenant_id=row.tenant_id,
        job_type=row.job_type,
        status=AIJobStatus(row.status),
        payload=row.payload,
        created_by_id=row.created_by_id,
        result=row.result,
        error_message=row.error_message,
        upload_name=row.upload.name or "",
        report_name=row.report.name or "",
        leased_by=row.leased_by,
        leased_until=row.leased_until,
        attempts=row.attempts,
        attempt=row.attempt,
        attempts_before_run=row.attempts_before_run,
        previous_attempts=list(row.previous_attempts),
        log=list(row.log),
        version=row.version,
    )


repository = AIJobRepository()
