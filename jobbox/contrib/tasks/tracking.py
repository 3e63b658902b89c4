"""How jobbox reads, versions and renders a tracked task (`TrackedTask`), and the database
fallback: on a Redis miss the row is read and the task's backend asked how the task stands,
so a transition the worker could not record (it died between the backend's write and ours)
still shows as the backend has it."""

import logging
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from jobbox.contrib.tasks.framework import module
from jobbox.contrib.tasks.models import RESULT_ID_MAX_CHARS, TrackedTask
from jobbox.model import Progress
from jobbox.registry import InvalidJobId, TrackedJob

logger = logging.getLogger(__name__)

KIND = "task"
# The ids backends hand out: UUIDs (the database backend) and random tokens (the immediate
# backend); nothing else may become part of a key.
RESULT_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{RESULT_ID_MAX_CHARS}}}")
Status = TrackedTask.Status


class TaskTracking(TrackedJob):
    kind = KIND
    model = TrackedTask
    status_namespace = "task"  # task:{<result id>}:status
    progress_namespace = "task"  # task:{<result id>}:progress
    running_statuses = frozenset({Status.RUNNING})
    terminal_statuses = frozenset({Status.SUCCESSFUL, Status.FAILED})
    id_field = "result_id"
    owner_field = "owner_id"

    def parse_id(self, raw: str) -> str:
        if not isinstance(raw, str) or not raw.isascii() or not RESULT_ID_PATTERN.fullmatch(raw):
            raise InvalidJobId(raw)
        return raw

    def load(self, job_id: str) -> models.Model | None:
        row = super().load(job_id)
        if row is not None:
            follow_backend(row)
        return row

    def snapshot_fields(self, instance: TrackedTask) -> dict[str, Any]:
        return {
            "id": instance.result_id,
            "task": instance.task_path,
            "status": instance.status,
            "enqueued_at": _iso(instance.enqueued_at),
            "started_at": _iso(instance.started_at),
            "finished_at": _iso(instance.finished_at),
            "error_class": instance.error_class or None,
            "return_value": instance.return_value,
            # Also tells the job box when the row last changed (changed_at_field).
            "updated_at": instance.updated_at.isoformat(),
        }

    def render(self, fields: Mapping[str, Any], progress: Progress | None) -> dict[str, Any]:
        running = fields["status"] == Status.RUNNING
        return {
            "id": fields["id"],
            "task": fields["task"],
            "status": fields["status"],
            "progress": _progress_body(progress) if running and progress else None,
            "enqueued_at": fields["enqueued_at"],
            "started_at": fields["started_at"],
            "finished_at": fields["finished_at"],
            "error_class": fields["error_class"],
            "return_value": fields["return_value"],
            "updated_at": fields["updated_at"],
        }


def follow_backend(row: TrackedTask) -> None:
    """Bring a row read on a Redis miss up to what its backend knows (in memory, same version:
    the row stays the record of what jobbox wrote). Backends that keep no results (the
    immediate one) and results the backend no longer has leave the row as it is."""
    tasks = module()
    try:
        backend = tasks.task_backends[row.backend]
    except ImproperlyConfigured:  # the backend was removed from TASKS since
        return
    if not backend.supports_get_result:
        return
    try:
        result = backend.get_result(row.result_id)
    except module("exceptions").TaskResultDoesNotExist:
        return
    status = str(result.status)
    if _rank(status) <= _rank(row.status):
        return
    row.status = status
    row.started_at = row.started_at or result.started_at
    row.finished_at = row.finished_at or result.finished_at
    if status == Status.FAILED and result.errors:
        row.error_class = result.errors[-1].exception_class_path


def _rank(status: str) -> int:
    """How far along a status is: a backend's view replaces the row's only when further."""
    return {Status.READY: 0, Status.RUNNING: 1}.get(status, 2)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _progress_body(progress: Progress) -> dict[str, Any]:
    return {
        "percent": progress.percent,
        "step_index": progress.step_index,
        "step_total": progress.step_total,
        "step_name": progress.step_name,
        "step_percent": progress.step_percent,
    }
