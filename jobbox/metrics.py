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
