"""A tracked task's life: recorded for its owner when enqueued, moved along by the framework's
own signals, its progress reported from inside the task.

`enqueue_for` names the person a task runs for; the `task_enqueued` signal (sent by every
backend once it holds the task, the immediate one before running it) then writes the
`TrackedTask` row in the enqueuing transaction. `task_started` and `task_finished` (sent where
the task runs: a worker process, or the enqueuing one for the immediate backend) move the row
with `save_transition`, under a row lock: version + 1, snapshot to Redis after commit, the
owner's box and stream told. Tasks enqueued without `enqueue_for` are not tracked.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobbox.client import RedisUnavailable
from jobbox.contrib.tasks.framework import module
from jobbox.contrib.tasks.models import TrackedTask
from jobbox.contrib.tasks.tracking import KIND
from jobbox.write import publish_on_commit, report_progress, save_transition

Status = TrackedTask.Status
# A return value whose JSON is larger than this stays in the backend only: a poll, a box
# entry and a stream event each carry at most this much of it (a progress bar's fields are
# well under 1 KB; a summary a page shows fits, a data dump does not).
RETURN_VALUE_MAX_BYTES = 4 * 1024


@dataclass(frozen=True, slots=True)
class Owner:
    tenant: str
    person: str


# Set by `enqueue_for` while its task is enqueued: whose task the `task_enqueued` signal is.
_enqueuing_for: ContextVar[Owner | None] = ContextVar("jobbox_enqueuing_for", default=None)


def enqueue_for(task: Any, *, tenant: object, owner: object, args: Sequence[Any] = (),
                kwargs: Mapping[str, Any] | None = None) -> Any:
    """Enqueue `task` as a job of `owner` (a user's id) in `tenant`; returns the TaskResult.
    Its status and progress are then read with zero SQL, in the owner's job box and stream."""
    with _owned_by(Owner(tenant=str(tenant), person=str(owner))):
        return task.enqueue(*args, **dict(kwargs or {}))


@contextmanager
def _owned_by(owner: Owner) -> Iterator[None]:
    token = _enqueuing_for.set(owner)
    try:
        yield
    finally:
        _enqueuing_for.reset(token)


def report_task_progress(context: Any, *, percent: float, step_index: int | None = None,
                         step_total: int | None = None, step_name: str | None = None,
                         step_percent: float | None = None) -> bool:
    """From inside a task declared with `takes_context=True`: its progress, by the task
    result's id (Redis only, never the database). False when not recorded: the task has
    ended, or Redis is unavailable (progress is best effort; the task goes on)."""
    try:
        return report_progress(KIND, str(context.task_result.id), percent=percent,
                               step_index=step_index, step_total=step_total,
                               step_name=step_name, step_percent=step_percent)
    except RedisUnavailable:
        return False


def on_task_enqueued(sender: type, task_result: Any, **_: object) -> None:
    owner = _enqueuing_for.get()
    if owner is None:
        return
    # One task per `enqueue_for`: a task the immediate backend runs right here may enqueue
    # others, and those are not this person's tracked jobs unless it says so itself.
    _enqueuing_for.set(None)
    with transaction.atomic():
        row = TrackedTask.objects.create(
            result_id=str(task_result.id), backend=task_result.backend,
            task_path=task_result.task.module_path, tenant_id=owner.tenant,
            owner_id=owner.person, status=Status.READY, version=1,
            enqueued_at=task_result.enqueued_at or timezone.now(),
        )
        publish_on_commit(row)


def on_task_started(sender: type, task_result: Any, **_: object) -> None:
    with transaction.atomic():
        row = _locked(task_result)
        if row is None or row.status != Status.READY:
            return  # not tracked, or a late signal of a run already recorded
        row.status = Status.RUNNING
        row.started_at = task_result.started_at or timezone.now()
        save_transition(row, update_fields=["status", "started_at"])


def on_task_finished(sender: type, task_result: Any, **_: object) -> None:
    with transaction.atomic():
        row = _locked(task_result)
        if row is None or row.status in (Status.SUCCESSFUL, Status.FAILED):
            return
        row.finished_at = task_result.finished_at or timezone.now()
        if str(task_result.status) == Status.SUCCESSFUL:
            row.status = Status.SUCCESSFUL
            row.return_value = _bounded(task_result.return_value)
        else:
            row.status = Status.FAILED
            errors = task_result.errors
            row.error_class = errors[-1].exception_class_path[:255] if errors else ""
        save_transition(row, update_fields=["status", "finished_at", "return_value",
                                            "error_class"])


def _locked(task_result: Any) -> TrackedTask | None:
    return (TrackedTask.objects.select_for_update()
            .filter(result_id=str(task_result.id)).first())


def _bounded(value: Any) -> Any:
    encoded = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(encoded.encode()) <= RETURN_VALUE_MAX_BYTES else None


def connect_signals() -> None:
    signals = module("signals")
    signals.task_enqueued.connect(on_task_enqueued, dispatch_uid="jobbox-task-enqueued")
    signals.task_started.connect(on_task_started, dispatch_uid="jobbox-task-started")
    signals.task_finished.connect(on_task_finished, dispatch_uid="jobbox-task-finished")
