"""Django's Tasks framework as jobbox jobs: any task, its status and progress served from
Redis with zero SQL, in its owner's job box and stream (docs/how-to/django-tasks.md).

Add "jobbox.contrib.tasks" to INSTALLED_APPS (after "jobbox"), enqueue with `enqueue_for`,
report progress from a `takes_context=True` task with `report_task_progress`, and route
`jobbox.contrib.tasks.urls`. Works with `django.tasks` (Django 6.x) and the `django-tasks`
backport (Django 5.2), with any backend; the database one is read on a Redis miss.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobbox.contrib.tasks.lifecycle import enqueue_for, report_task_progress
    from jobbox.contrib.tasks.tracking import KIND

__all__ = ["KIND", "enqueue_for", "report_task_progress"]

_PUBLIC = {
    "enqueue_for": "jobbox.contrib.tasks.lifecycle",
    "report_task_progress": "jobbox.contrib.tasks.lifecycle",
    "KIND": "jobbox.contrib.tasks.tracking",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the package can be named in INSTALLED_APPS before apps are ready.
    from importlib import import_module

    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'jobbox.contrib.tasks' has no attribute {name!r}")
    return getattr(import_module(module), name)
