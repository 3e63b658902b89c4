"""Sending the outbox: due deliveries claimed in rounds, signed, sent, retried or given up.

A round (the worker's periodic task, and one queued after every transition that wrote
deliveries) claims due rows by a conditional UPDATE of their lease, so two workers never send
the same row at once and a worker that dies leaves its rows to a round after the lease. Each
academy has at most `WEBHOOK_MAX_IN_FLIGHT_PER_ACADEMY` rows leased at a time: an academy
whose endpoint hangs holds that many sending threads, never the others' share. A failed
attempt is retried with exponential backoff and jitter; a delivery older than
`WEBHOOK_RETRY_FOR_SECONDS` is given up, and an endpoint that has failed for that long is
disabled with the reason its administrators see.
"""

import logging
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from academy.webhooks import targets
from academy.webhooks.metrics import DELIVERIES_PENDING, DELIVERY_ATTEMPTS
from academy.webhooks.models import Delivery, Endpoint

logger = logging.getLogger(__name__)

# Rows one round considers: a round takes seconds at most, and the next one follows.
ROUND_BATCH = 100
# A retry waits about 5 s, then twice as long each time, up to an hour: a receiver down for
# a minute gets its events within seconds of coming back, one down for hours is not pestered.
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0 * 60
# A claimed row's lease: longer than one attempt can take (targets' total timeout).
LEASE_SECONDS = 60.0


def deliver_due() -> int:
    """One round: send every claimable due delivery; the number of attempts made."""
    claimed = claim_due(timezone.now())
    if claimed:
        _send(claimed)
    DELIVERIES_PENDING.set(Delivery.objects.filter(status=Delivery.Status.PENDING).count())
    return len(claimed)


def _send(claimed: list[int]) -> None:
    threads = settings.WEBHOOK_SEND_THREADS
    if threads <= 1:
        for delivery_id in claimed:
            _attempt_logged(delivery_id)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(_attempt_in_thread, claimed))


def claim_due(now: datetime) -> list[int]:
    """Lease due rows, at most the per-academy budget minus what each academy has in flight."""
    due = list(Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
               .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
               .order_by("next_attempt_at").values_list("id", "tenant_id")[:ROUND_BATCH])
    in_flight = Counter({
        row["tenant_id"]: row["n"]
        for row in Delivery.objects.filter(status=Delivery.Status.PENDING, lease_until__gte=now)
        .values("tenant_id").annotate(n=Count("id"))})
    budget = settings.WEBHOOK_MAX_IN_FLIGHT_PER_ACADEMY
    lease_until = now + timedelta(seconds=LEASE_SECONDS)
    claimed = []
    for delivery_id, tenant_id in due:
        if in_flight[tenant_id] >= budget:
            continue
        won = (Delivery.objects.filter(id=delivery_id, status=Delivery.Status.PENDING)
               .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
               .update(lease_until=lease_until))
        if won:
            in_flight[tenant_id] += 1
            claimed.append(delivery_id)
    return claimed


def _attempt_in_thread(delivery_id: int) -> None:
    try:
        _attempt_logged(delivery_id)
    finally:
        connections.close_all()  # this thread's own connections: the pool's threads end here


def _attempt_logged(delivery_id: int) -> None:
    try:
        attempt(delivery_id)
    except Exception:  # one row's surprise must not end the round for the others
        logger.exception("webhooks: delivery %s raised", delivery_id)


def attempt(delivery_id: int) -> None:
    """Send one claimed delivery once and record what happened."""
    delivery = Delivery.objects.select_related("endpoint").get(id=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        _give_up(delivery, "endpoint disabled")
        return
    now = timezone.now()
    body = delivery.payload.encode()
    try:
        answer = targets.post(targets.parse(endpoint.url), body, _signed_headers(
            endpoint.secret, delivery.message_id, now, body))
    except targets.TargetRefused as refused:
        DELIVERY_ATTEMPTS.labels("refused").inc()
        _failed(delivery, now, status_code=None, elapsed_ms=None, error=refused.code)
        return
    except Exception as exc:  # urllib3's errors: refused, reset, timed out...
        _failed(delivery, now, status_code=None, elapsed_ms=None, error=type(exc).__name__)
        return
    if 200 <= answer.status_code < 300:
        _delivered(delivery, now, answer)
    else:
        _failed(delivery, now, status_code=answer.status_code, elapsed_ms=answer.elapsed_ms,
                error=f"HTTP {answer.status_code}")


def _signed_headers(secret: str, message_id: str, now: datetime, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "user-agent": "jobbox-webhooks",
    }


def _delivered(delivery: Delivery, now: datetime, answer: targets.Answer) -> None:
    DELIVERY_ATTEMPTS.labels("delivered").inc()
    Delivery.objects.filter(id=delivery.id).update(
        status=Delivery.Status.DELIVERED, attempts=delivery.attempts + 1, delivered_at=now,
        lease_until=None, last_status_code=answer.status_code,
        last_response_ms=answer.elapsed_ms, last_error="")
    Endpoint.objects.filter(id=delivery.endpoint_id).update(failing_since=None)


def _failed(delivery: Delivery, now: datetime, *, status_code: int | None,
            elapsed_ms: int | None, error: str) -> None:
    attempts = delivery.attempts + 1
    retry_for = timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS)
    given_up = now - delivery.created_at >= retry_for
    DELIVERY_ATTEMPTS.labels("given_up" if given_up else "failed").inc()
    with transaction.atomic():
        Delivery.objects.filter(id=delivery.id).update(
            status=Delivery.Status.FAILED if given_up else Delivery.Status.PENDING,
            attempts=attempts, lease_until=None, last_status_code=status_code,
            last_response_ms=elapsed_ms, last_error=error[:200],
            next_attempt_at=now + timedelta(seconds=retry_delay_seconds(attempts)))
        Endpoint.objects.filter(id=delivery.endpoint_id, failing_since__isnull=True).update(
            failing_since=now)
        failing_for_long = Endpoint.objects.filter(
            id=delivery.endpoint_id, enabled=True, failing_since__lte=now - retry_for)
        failing_for_long.update(enabled=False, disabled_reason=(
            f"Disabled at {now:%Y-%m-%d %H:%M} UTC: every delivery failed for "
            f"{settings.WEBHOOK_RETRY_FOR_SECONDS // 3600} h (last: {error[:100]})."))


def _give_up(delivery: Delivery, error: str) -> None:
    Delivery.objects.filter(id=delivery.id).update(
        status=Delivery.Status.FAILED, lease_until=None, last_error=error)


def retry_delay_seconds(attempts: int) -> float:
    """Exponential backoff with jitter: half the step fixed, half random, so endpoints that
    failed together are not retried in step."""
    step = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(attempts - 1, 20))
    return step / 2 + random.uniform(0, step / 2)
