"""Deprecated: the AI jobs' settings are `settings.AI_*` constants (academy.settings, read
from the environment). `get("NAME")` answers `settings.AI_NAME` so code written against the
former `AI_JOBS` dict keeps working until it is converted."""

from typing import Any

from django.conf import settings


def get(name: str) -> Any:
    return getattr(settings, f"AI_{name}")
