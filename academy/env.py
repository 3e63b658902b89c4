"""The service's settings from the environment, typed: one reader per type, each taking the
variable's name and its default, and refusing a value it cannot read with an error that
names the variable and what it expected (rather than a bare `ValueError` at start-up, or a
wrong value taken silently).

`academy.settings` reads every variable through these; nothing else reads `os.environ` for
a setting.
"""

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

Number = TypeVar("Number", int, float)

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def text(name: str, default: str) -> str:
    """The variable as written; unset or empty: `default`."""
    return os.environ.get(name) or default


def optional_text(name: str) -> str | None:
    """The variable as written; unset or empty: None."""
    return os.environ.get(name) or None


def integer(name: str, default: int) -> int:
    return _parsed(name, default, int, "a whole number")


def number(name: str, default: float) -> float:
    return _parsed(name, default, float, "a number")


def flag(name: str, default: bool = False) -> bool:
    """1/true/yes/on or 0/false/no/off, any case; unset or empty: `default`."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE_WORDS | _FALSE_WORDS:
        return raw in _TRUE_WORDS
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r}: expected one of {sorted(_TRUE_WORDS | _FALSE_WORDS)}.")


def words(name: str, default: str) -> list[str]:
    """A comma-separated list (blank items dropped); unset or empty: `default`'s items."""
    return [item.strip() for item in text(name, default).split(",") if item.strip()]


def _parsed(name: str, default: Number, parse: Callable[[str], Number],
            expected: str) -> Number:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not {expected} (the default is {default}).") from None
    if value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must not be negative.")
    return value
