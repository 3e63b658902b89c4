"""The seed's AI job row: PENDING → PROCESSING → DONE / FAILED / CANCELLED, versioned for jobbox.

docs/explanation/states.md. The row is the durable record; the domain object and its repository
(academy.ai.domain, academy.ai.repositories) are how the code changes it.
"""

import secrets

from django.conf import settings
from django.db import models

# 24 random bytes: 32 URL-safe characters, unguessable, and within jobbox.keys' id pattern.
JOB_ID_BYTES = 24


def new_job_id() -> str:
    return secrets.token_urlsafe(JOB_ID_BYTES)


class AIJobModel(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        PROCESSING = "PROCESSING"
        DONE = "DONE"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    job_id = models.CharField(max_length=64, unique=True, default=new_job_id, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="ai_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="ai_jobs"
    )
    job_type = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    upload = models.FileField(max_length=300, blank=True)
    report = models.FileField(max_length=300, blank=True)
    leased_by = models.CharField(max_length=200, blank=True, default="")
    # Renewed by the running worker's heartbeat; past it, the worker is taken for dead and
    # the reaper re-queues the job (academy.ai.reaper).
    leased_until = models.DateTimeField(null=True, blank=True)
    # When the job was last sent to the queue: a PENDING job sent long ago is sent again (the
    # send may have been lost after commit).
    queued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The run a person asked for: 1, then one more per retry; the reaper's limit counts the
    # starts of this run only (`attempts` minus `attempts_before_run`).
    attempt = models.PositiveIntegerField(default=1)
    attempts_before_run = models.PositiveIntegerField(default=0)
    # Earlier runs, oldest first: {"attempt", "status", "reason"} each.
    previous_attempts = models.JSONField(default=list, blank=True)
    # The job's own log, copied from Redis when it ends (jobbox.read_log): lines, oldest first.
    log = models.JSONField(default=list, blank=True)
    # Bumped by every transition; Redis applies a snapshot only if its version is newer.
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status"]),
            # The reaper's two bounded queries: PROCESSING jobs by lease expiry, PENDING ones
            # by last send.
            models.Index(fields=["leased_until"], name="ai_processing_lease_idx",
                         condition=models.Q(status="PROCESSING")),
            models.Index(fields=["queued_at"], name="ai_pending_queued_idx",
                         condition=models.Q(status="PENDING")),
        ]

    def __str__(self) -> str:
        return f"ai job {self.job_id} ({self.status})"
