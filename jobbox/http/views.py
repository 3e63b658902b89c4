"""Every HTTP view jobbox offers (DESIGN.md, "HTTP API"), thin by design (STYLE.md, 9).

- `JobStatusAPIView`: one job's representation; a project subclasses it per job kind.
- `JobBoxView`: `GET /api/jobbox/`, all of the caller's running and recently finished jobs.
- `job_box_stream`: `GET /api/jobbox/stream`, the same as Server-Sent Events (ASGI only).
- `metrics_view`, `healthz`: Prometheus text; liveness and dependency health.

Authentication is the principal cache (`jobbox.auth`), bodies come from `jobbox.read` and
`jobbox.box`, and a missing job, another tenant's job and a malformed id all answer the
same 404 without detail (invariant 5). `jobbox.http.urls` routes the box, the stream, the
metrics and the health check.
"""

import os
from typing import Any, ClassVar

from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobbox import conf
from jobbox.auth.drf import CachedSessionAuthentication, CachedTokenAuthentication
from jobbox.auth.principals import Principal, principal_for_request
from jobbox.box import box_from_database, read_box
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.http import errors
from jobbox.read import JobNotFound, read_job
from jobbox.stream import StreamUnavailable, in_sync_thread, parse_event_id, start_stream

# The last event id at the moment the box was read: a stream opened from it misses nothing.
EVENT_ID_HEADER = "X-Jobbox-Event-Id"


class CachedAuthAPIView(APIView):
    """Base of API views that authenticate through the principal cache: JSON only, the
    database down answers 503, and `request_tenant` / `request_principal` for the view."""

    authentication_classes: ClassVar[list[type]] = [
        CachedTokenAuthentication,
        CachedSessionAuthentication,
    ]
    permission_classes: ClassVar[list[type]] = [IsAuthenticated]
    renderer_classes: ClassVar[list[type]] = [JSONRenderer]

    def get_exception_handler(self):  # noqa: ANN201 - DRF's signature
        # The database down answers 503 on jobbox's views whatever the project's settings.
        return errors.exception_handler

    def request_principal(self, request: Request) -> Principal:
        principal = principal_for_request(request)
        if principal is None or principal.tenant is None:
            raise NotFound()  # a user outside every tenant sees no job at all
        return principal

    def request_tenant(self, request: Request) -> str:
        tenant = self.request_principal(request).tenant
        assert tenant is not None
        return tenant


class JobStatusAPIView(CachedAuthAPIView):
    """GET one job's representation; subclasses set `kind`."""

    kind: ClassVar[str]

    def get(self, request: Request, job_id: str) -> Response:
        try:
            body: dict[str, Any] = read_job(self.kind, job_id, tenant=self.request_tenant(request))
        except JobNotFound:
            raise NotFound() from None
        return Response(body)


class JobBoxView(CachedAuthAPIView):
    """GET the caller's job box: zero SQL on a hit (the box's one round trip); an `ETag` over
    the body lets an unchanged box answer 304. Every job in it is checked against the
    principal's tenant and owner."""

    def get(self, request: Request) -> HttpResponse:
        principal = self.request_principal(request)
        tenant, owner = str(principal.tenant), str(principal.user_id)
        try:
            box = read_box(tenant=tenant, owner=owner)
        except RedisUnavailable:
            # DESIGN.md, invariant 6: degraded, answered from the database (bounded queries).
            box = box_from_database(tenant=tenant, owner=owner)
        if box.etag in _etags(request.headers.get("If-None-Match", "")):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(box.body, content_type="application/json")
        response["ETag"] = box.etag
        response["Cache-Control"] = "private, no-cache"
        response[EVENT_ID_HEADER] = box.last_event_id
        return response


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


async def job_box_stream(request: HttpRequest) -> HttpResponse:
    """GET /api/jobbox/stream (token or session; `Last-Event-ID` or `?last_event_id=`)."""
    if not isinstance(request, ASGIRequest):
        # Under a sync (WSGI) server a stream would hold a worker thread for minutes.
        return JsonResponse({"detail": "The event stream is served over ASGI."}, status=503)
    principal = await in_sync_thread(principal_for_request)(request)
    if principal is None or not principal.is_active:
        return JsonResponse({"detail": "Authentication credentials were not provided."},
                            status=401)
    if principal.tenant is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    resume_from = parse_event_id(request.headers.get("Last-Event-ID")
                                 or request.GET.get("last_event_id"))
    try:
        return await start_stream(tenant=principal.tenant, owner=str(principal.user_id),
                                  resume_from=resume_from)
    except StreamUnavailable:
        return JsonResponse({"detail": "The event stream is unavailable."}, status=503)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text, for a scraper holding `Bearer <JOBBOX["METRICS_TOKEN"]>` or staff."""
    if not _may_scrape(request):
        return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(_metrics_text(), content_type=CONTENT_TYPE_LATEST)


def _metrics_text() -> bytes:
    """This process's metrics, or, under prometheus_client's multiprocess mode
    (PROMETHEUS_MULTIPROC_DIR set), every process's summed: a scrape answered by any worker
    shows the same totals, and consecutive scrapes never go backwards."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def _may_scrape(request: HttpRequest) -> bool:
    expected = conf.get("METRICS_TOKEN")
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
