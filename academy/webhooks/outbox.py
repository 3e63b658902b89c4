"""The outbox: a job's transition writes its webhook deliveries in its own transaction.

Connected to `jobbox.signals.job_transitioned`, which `save_transition` sends after saving the
row and before commit: the deliveries commit or roll back with the transition, so a restart of
anything afterwards loses none, and a rolled-back transition announces nothing. Sending waits
for the worker (`delivery`); a queue send after commit only makes it start at once.
"""

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from academy.queue import send_on_commit
from academy.webhooks.models import Delivery, Endpoint
from jobbox.model import Snapshot
from jobbox.registry import TrackedJob

DELIVER_TASK = "academy.webhooks.deliver_due"


def event_type_of(job: TrackedJob, status: str) -> str | None:
    """The webhook event a job entering `status` is, or None (queued states say nothing)."""
    if status in job.terminal_statuses:
        return {"FAILED": "job.failed", "CANCELLED": "job.cancelled"}.get(status, "job.finished")
    if status in job.running_statuses:
        return "job.started"
    return None


def record_transition(*, job: TrackedJob, instance: models.Model, snapshot: Snapshot,
                      update_fields: frozenset[str], **_: Any) -> None:
    if job.status_field not in update_fields:
        return
    event_type = event_type_of(job, snapshot.status)
    if event_type is None:
        return
    endpoints = [endpoint for endpoint in Endpoint.objects.filter(
        tenant_id=snapshot.tenant, enabled=True).only("id", "events")
        if event_type in endpoint.events]
    if not endpoints:
        return
    payload = _payload(job, snapshot, event_type)
    now = timezone.now()
    Delivery.objects.bulk_create([
        Delivery(endpoint_id=endpoint.id, tenant_id=snapshot.tenant, event_type=event_type,
                 message_id=f"msg_{secrets.token_hex(16)}", payload=payload,
                 next_attempt_at=now)
        for endpoint in endpoints[:settings.WEBHOOK_MAX_ENDPOINTS_PER_ACADEMY]
    ])
    send_on_commit(DELIVER_TASK)


def _payload(job: TrackedJob, snapshot: Snapshot, event_type: str) -> str:
    # The job as a poll shows it once the transition is committed (no live progress: the
    # job has just changed state).
    body = {
        "type": event_type,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"kind": snapshot.kind, "id": snapshot.job_id, "version": snapshot.version,
                 "job": job.render(snapshot.fields, None)},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
