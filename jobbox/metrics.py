"""Prometheus metrics of the read and write paths (DESIGN.md, "HTTP API": /metrics)."""

from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

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
