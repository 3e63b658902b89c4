"""Webhook metrics: the outbox's backlog and what attempts came to (docs/reference/metrics.md)."""

from prometheus_client import Counter, Gauge

DELIVERIES_PENDING = Gauge(
    "academy_webhook_deliveries_pending",
    "Webhook deliveries waiting to be sent or retried, counted after each delivery round.",
    # Set by whichever worker ran the latest round: the newest count is the backlog.
    multiprocess_mode="mostrecent",
)
DELIVERY_ATTEMPTS = Counter(
    "academy_webhook_delivery_attempts_total",
    "Webhook delivery attempts by outcome: delivered, failed (retried later), given_up, refused.",
    ["outcome"],
)
# Zero from the start: a dashboard shows 0, not "no data", before the first attempt.
for _outcome in ("delivered", "failed", "given_up", "refused"):
    DELIVERY_ATTEMPTS.labels(_outcome)
