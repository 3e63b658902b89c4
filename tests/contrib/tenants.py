"""The contrib tests' tenants: a user's first group, by name."""

from typing import Any


def tenant_of(user: Any) -> str | None:
    group = user.groups.order_by("pk").first()
    return group.name if group is not None else None
