"""Queue sends: the one place tasks are sent, always after commit.

A task sent before commit could run before its row is visible, or for a row that is then
rolled back; `send_on_commit` sends only once the transaction that created the work commits.
A send that fails (the broker is down) must not turn the committed request into a 500: it
is logged for a person, and the periodic re-senders pick up work left waiting.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from celery import Task, current_app
from django.db import InterfaceError, transaction
from django.db import OperationalError as DatabaseUnreachable
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def send_on_commit(task: Task | str, *args: Any, **kwargs: Any) -> None:
    """Send `task` (a task, or its registered name: a service names the task it queues, so it
    need not import the tasks module that imports the service) once the transaction commits."""
    transaction.on_commit(lambda: _send(task, args, kwargs))


def _send(task: Task | str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    name = task if isinstance(task, str) else task.name
    try:
        if isinstance(task, str):
            # By name: the worker resolves it; this process need not have imported it.
            current_app.send_task(task, args=args, kwargs=kwargs)
        else:
            task.apply_async(args=args, kwargs=kwargs)
    except OperationalError:
        logger.warning("queue: %s%r not sent, the broker is unavailable; left to the re-sender",
                       name, args)


def is_database_outage(exc: BaseException) -> bool:
    """The database could not be reached (down, restarting): not the job's fault."""
    return isinstance(exc, DatabaseUnreachable | InterfaceError)


@contextlib.contextmanager
def left_to_the_reaper_if_database_down(what: str) -> Iterator[None]:
    """A task's failure hook writing to the database while it is unreachable: logged, and the
    job left to its lease and the reaper, never raised (Celery stops a worker whose failure
    hook raises, and its other jobs wait for a worker that is gone)."""
    try:
        yield
    except (DatabaseUnreachable, InterfaceError) as exc:
        logger.warning("%s: the database is unavailable (%s); left to its lease and the reaper",
                       what, type(exc).__name__)
