"""The operational endpoints: Prometheus text for a scraper, and the health check.

- `metrics_view`: this process's metrics (or every process's, summed, under
  prometheus_client's multiprocess mode), for a bearer of `METRICS_TOKEN` or staff.
- `healthz`: 200 while polls can be answered (Redis or the database up), 503 otherwise.
"""

import os

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from jobbox import conf, registry
from jobbox.auth.principals import principal_for_request
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import start_at_zero


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text, for a scraper holding `Bearer <JOBBOX["METRICS_TOKEN"]>` or staff."""
    if not _may_scrape(request):
        return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(_metrics_text(), content_type=CONTENT_TYPE_LATEST)


def _metrics_text() -> bytes:
    """This process's metrics, or, under prometheus_client's multiprocess mode
    (PROMETHEUS_MULTIPROC_DIR set), every process's summed: a scrape answered by any worker
    shows the same totals, and consecutive scrapes never go backwards."""
    start_at_zero([job.kind for job in registry.all_jobs()])
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return generate_latest(collected)


def _may_scrape(request: HttpRequest) -> bool:
    expected = conf.settings().METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if expected and constant_time_compare(header, f"Bearer {expected}"):
        return True
    principal = principal_for_request(request)
    return bool(principal and principal.is_active and principal.is_staff)


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the service can answer polls (Redis or the database up), 503 otherwise."""
    checks = {"redis": _redis_ok(), "database": _database_ok()}
    healthy = any(checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable",
         **{name: "ok" if ok else "down" for name, ok in checks.items()}},
        status=200 if healthy else 503,
    )


def _redis_ok() -> bool:
    try:
        with redis_errors():
            return bool(get_redis().ping())
    except RedisUnavailable:
        return False


def _database_ok() -> bool:
    try:
        connection.ensure_connection()
        return connection.is_usable()
    except Exception:
        return False
