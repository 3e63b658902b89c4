"""The seed's AI job repository: `save(job)` on top of jobbox (seed, section 3).

`save` writes the row and, only after commit, its snapshot to Redis (`job:{id}:status`,
the seed's TTLs: 2 h running, 1 h finished): a new job is published as created, and every
change is a transition through `jobbox.save_transition` (version + 1, compare-and-set
in Redis). DESIGN.md, invariants 2 and 3.
"""

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
    "attempts": "attempts",
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
                attempts=job.attempts,
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
        attempts=row.attempts,
        version=row.version,
    )


repository = AIJobRepository()
