"""Tenant look-ups and set-up."""

from django.contrib.auth.models import AbstractBaseUser

from academy.tenants.models import Membership


def tenant_id_for_user(user: AbstractBaseUser) -> int | None:
    """jobbox's TENANT_RESOLVER: read once per principal fill, never on a poll."""
    return Membership.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True).first()
