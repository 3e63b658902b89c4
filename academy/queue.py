"""Queue sends: the one place tasks are sent, always after commit (STYLE.md, 6).

A task sent before commit could run before its row is visible, or for a row that is then
rolled back; `send_on_commit` sends only once the transaction that created the work commits.
"""

from typing import Any

from celery import Task
from django.db import transaction


def send_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs))
