"""Prometheus metrics of the read and write paths (DESIGN.md, "HTTP API": /metrics)."""

from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from jobbox import conf

READS = Counter(
    "jobbox_reads_total",
    "Job status reads by where the answer came from.",
    ["kind", "source"],  # source: redis, db_fill, db_fallback, not_found
)
CACHE_WRITES = Counter(
    "jobbox_cache_writes_total",
    "Snapshot writes to Redis by outcome.",
    ["kind", "outcome"],  # outcome: stored, stale, failed
)
LARGE_FIELD_READS = Counter(
    "jobbox_large_field_reads_total",
    "Reads of snapshot fields too large for Redis (a job's result) by where they came from.",
    ["kind", "source"],  # source: process (the windowed cache), db
)
PRINCIPAL_READS = Counter(
    "jobbox_principal_reads_total",
    "Token or session resolutions by where the answer came from.",
    ["source"],  # source: redis, db_fill, db_fallback
)

# The job box (jobbox.jobbox_index, jobbox.stream).
JOBBOX_READS = Counter(
    "jobbox_box_reads_total",
    "Job-box reads by outcome.",
    ["outcome"],  # outcome: redis, rebuilt, db_fallback
)
STREAMS_OPEN = Gauge(
    "jobbox_streams_open",
    "Event streams open in this process.",
    multiprocess_mode="livesum",
)
STREAM_EVENTS = Counter(
    "jobbox_stream_events_total",
    "Events sent on event streams, by kind of start or event.",
    ["event"],  # event: box, resync, replayed, changed, progressed, dropped_slow
)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text, for a scraper holding `Bearer <JOBBOX["METRICS_TOKEN"]>` or staff."""
    if not _may_scrape(request):
        return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def _may_scrape(request: HttpRequest) -> bool:
    from jobbox.auth import principal_for_request

    expected = conf.get("METRICS_TOKEN")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if expected and constant_time_compare(header, f"Bearer {expected}"):
        return True
    principal = principal_for_request(request)
    return bool(principal and principal.is_active and principal.is_staff)


# --- Resilience (DESIGN.md, invariants 6-8) ---
# READS sources added: negative (a remembered missing id), fallback_cache (Redis unavailable,
# answered by this process's short-lived copy). PRINCIPAL_READS sources added:
# fallback_cache, shared (another thread of this process read the same principal).
REDIS_BREAKER_STATE = Gauge(
    "jobbox_redis_breaker_state",
    "The Redis circuit breaker: 0 closed, 1 open (answering from the database), 2 half-open.",
)
REDIS_BREAKER_OPENS = Counter(
    "jobbox_redis_breaker_opens_total",
    "Times the Redis circuit breaker opened after a failure or timeout.",
)
REPAIRS = Counter(
    "jobbox_repairs_total",
    "Stale or missing snapshots the reconciler stored again.",
    ["kind"],
)
SINGLE_FLIGHT_WAITS = Counter(
    "jobbox_single_flight_waits_total",
    "Misses that waited for another reader's fill instead of reading the database.",
    # outcome: shared (another thread of this process read it), filled (another reader's
    # fill arrived in Redis), gave_up (the lease outlived the wait: read the database)
    ["kind", "outcome"],
)
DATABASE_UNAVAILABLE = Counter(
    "jobbox_database_unavailable_total",
    "Requests answered 503 because the database could not be reached.",
)
