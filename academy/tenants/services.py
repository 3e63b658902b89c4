"""Tenant look-ups and set-up."""

from django.contrib.auth.models import AbstractBaseUser

from academy.tenants.models import Membership


def tenant_id_for_user(user: AbstractBaseUser) -> int | None:
    """jobbox's TENANT_RESOLVER: read once per principal fill, never on a poll."""
    return Membership.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True).first()


def tenant_ids_for_users(users: list[AbstractBaseUser]) -> dict[int, int]:
    """jobbox's TENANT_RESOLVER_MANY: the tenants of many users in one query (an outage's
    batch refresh of principals). The lowest membership wins, as `.first()` above."""
    tenants: dict[int, int] = {}
    rows = Membership.objects.filter(user_id__in=[user.pk for user in users]).order_by("pk")
    for user_id, tenant_id in rows.values_list("user_id", "tenant_id"):
        tenants.setdefault(user_id, tenant_id)
    return tenants
