"""Django's Tasks framework, wherever it comes from: `django.tasks` on Django 6.x, the
`django-tasks` backport on 5.2 (the same API under another package name). Every other module
of this app imports the framework from here, so the two never mix in one process."""

from importlib import import_module
from importlib.util import find_spec
from types import ModuleType


def _framework_package() -> str:
    if find_spec("django.tasks") is not None:
        return "django.tasks"
    if find_spec("django_tasks") is not None:
        return "django_tasks"
    raise ImportError("jobbox.contrib.tasks needs Django 6.x or the django-tasks backport")


PACKAGE = _framework_package()


def module(name: str = "") -> ModuleType:
    """`django.tasks` (or `django_tasks`), or one of its submodules: `module("signals")`."""
    return import_module(f"{PACKAGE}.{name}" if name else PACKAGE)
