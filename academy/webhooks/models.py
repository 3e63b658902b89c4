"""Webhook endpoints of an academy and the outbox of their deliveries."""

from django.conf import settings
from django.db import models

from academy.tenants.models import Tenant

# The events an endpoint may subscribe to: a job's end in each of its ways, and its start.
EVENT_TYPES = ("job.finished", "job.failed", "job.cancelled", "job.started")


class Endpoint(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)
    # `whsec_` + base64 of 24 random bytes (the Standard Webhooks secret format).
    secret = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    # The first failed attempt since the last success: a day of failures disables the endpoint.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.url}"


class Delivery(models.Model):
    """One event for one endpoint: written with the job's transition, sent at least once."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        DELIVERED = "DELIVERED"
        FAILED = "FAILED"  # given up: too old, or its endpoint was disabled or removed

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Kept beside the endpoint so a round's per-academy budget needs no join.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # The `webhook-id` header: the same on every attempt, so a receiver can drop duplicates.
    message_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=32)
    # The body exactly as signed and sent, on every attempt.
    payload = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Held by the worker sending it; a worker that dies leaves it to the next round after this.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"]),
                   models.Index(fields=["endpoint", "-created_at"])]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type} {self.status}"
