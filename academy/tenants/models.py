"""Tenants (academies) and the membership that puts a user in one."""

from django.conf import settings
from django.db import models


class Tenant(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user acts in exactly one tenant; changing this invalidates their cached principal."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, default="staff")

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}"
