"""The record jobbox keeps of a tracked task: whose it is and where it stands.

The Tasks framework gives a task result no owner and no version, and only some backends keep
results at all (the immediate one keeps none). One row per tracked task result adds what the
job box, the tenant walls and the ordered writes need; the backend stays the task's own
record (its arguments, return value and tracebacks).
"""

from django.db import models

# The longest result id a backend hands out that fits a Redis key here (jobbox.keys).
RESULT_ID_MAX_CHARS = 64


class TrackedTask(models.Model):
    class Status(models.TextChoices):
        # The framework's own names (TaskResultStatus), so a status reads the same everywhere.
        READY = "READY"
        RUNNING = "RUNNING"
        SUCCESSFUL = "SUCCESSFUL"
        FAILED = "FAILED"

    result_id = models.CharField(primary_key=True, max_length=RESULT_ID_MAX_CHARS)
    backend = models.CharField(max_length=100)
    task_path = models.CharField(max_length=255)
    tenant_id = models.CharField(max_length=64)
    owner_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    # Each transition adds one: Redis keeps the newest snapshot whatever order writes arrive in.
    version = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    # The failing exception's class path only: its message and traceback stay in the
    # backend, never in a response.
    error_class = models.CharField(max_length=255, blank=True, default="")
    # The task's return value when its JSON is within RETURN_VALUE_MAX_BYTES; else null.
    return_value = models.JSONField(null=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        indexes = [
            # A job box rebuilt from the database: one owner's tasks, newest change first.
            models.Index(fields=["tenant_id", "owner_id", "-updated_at"],
                         name="jobbox_task_owner_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} {self.result_id} ({self.status})"
