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

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, ClassVar

from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobbox import conf, keys
from jobbox.auth.drf import CachedSessionAuthentication, CachedTokenAuthentication
from jobbox.auth.principals import (
    Principal,
    principal_for_request,
    principal_for_token,
    principal_for_user_id,
    token_in_header,
)
from jobbox.box import box_from_database, read_box
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.http import errors
from jobbox.read import JobNotFound, read_job
from jobbox.stream import (
    CLIENT_RETRY_MS,
    PrincipalCheck,
    Stream,
    StreamUnavailable,
    TooManyStreams,
    in_sync_thread,
    parse_event_id,
    start_stream,
)

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
    """GET /api/jobbox/stream (token or session; `Last-Event-ID` or `?last_event_id=`)
    through Django's ASGI handler. Django runs its middleware and closes the response in a
    thread of the request's own, held while the stream is open: a service with many streams
    serves this path with `jobbox.http.asgi.stream_app` instead (no thread per stream)."""
    if not isinstance(request, ASGIRequest):
        # Under a sync (WSGI) server a stream would hold a worker thread for minutes.
        return JsonResponse({"detail": "The event stream is served over ASGI."}, status=503)
    opened = await open_stream_for(request)
    if isinstance(opened, HttpResponse):
        return opened
    return EventStreamResponse(opened)


async def open_stream_for(request: HttpRequest) -> "Stream | JsonResponse":
    """The caller's stream, or the JSON error that refuses it: 401 without a live principal,
    404 outside every tenant, 429 past the person's open streams, 503 without Redis or the
    database."""
    try:
        principal = await in_sync_thread(principal_for_request)(request)
    except DatabaseError:
        return JsonResponse({"detail": "Service temporarily unavailable."}, status=503)
    if principal is None or not principal.is_active:
        return JsonResponse({"detail": "Authentication credentials were not provided."},
                            status=401)
    if principal.tenant is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    raw_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    try:
        return await start_stream(
            tenant=principal.tenant, owner=str(principal.user_id),
            resume_from=parse_event_id(raw_id), resume_requested=bool(raw_id),
            check=principal_check(request, principal))
    except TooManyStreams:
        limit = conf.get("STREAMS_PER_PERSON")
        response = JsonResponse(
            {"detail": f"Too many open event streams: at most {limit} per person.",
             "limit": limit}, status=429)
        response["Retry-After"] = str(max(1, CLIENT_RETRY_MS // 1000))
        return response
    except StreamUnavailable:
        return JsonResponse({"detail": "The event stream is unavailable."}, status=503)


def principal_check(request: HttpRequest, principal: Principal) -> PrincipalCheck:
    """How an open stream re-checks the access it was opened with: the principal cache's
    entry it came from, and the same resolution a new request would make when that entry
    was invalidated or changed."""
    token = token_in_header(request)
    if token is not None:
        return PrincipalCheck(
            key=keys.token_principal_key(token), expected=asdict(principal),
            resolve=lambda: principal_for_token(token),
            still_allowed=lambda fresh: _same_access(principal, fresh))
    return PrincipalCheck(
        key=keys.user_principal_key(principal.user_id), expected=asdict(principal),
        resolve=lambda: principal_for_user_id(principal.user_id),
        # A password change ends sessions (Django's session hash), as on any request.
        still_allowed=lambda fresh: (_same_access(principal, fresh)
                                     and fresh.session_hash == principal.session_hash))


def _same_access(opened_with: Principal, fresh: Principal | None) -> bool:
    return (fresh is not None and fresh.is_active and fresh.user_id == opened_with.user_id
            and fresh.tenant == opened_with.tenant)


class EventStreamResponse(StreamingHttpResponse):
    """An SSE response that releases its stream when Django closes it.

    A client that disconnects while an event is being sent leaves the event generator
    suspended at a `yield` (Django cancels the send, not the generator, and closes only
    synchronous iterators): without this, the stream would live until the generator is
    garbage-collected. Django calls `close()` in a thread: the release runs on the loop.
    """

    def __init__(self, stream: Stream) -> None:
        super().__init__(_events(stream), content_type="text/event-stream")
        self._stream = stream
        self._loop = asyncio.get_running_loop()
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"  # a proxy must pass events on as they come

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stream.close(), self._loop)
        super().close()


async def _events(stream: Stream) -> AsyncIterator[bytes]:
    async for chunk in stream.events():
        yield chunk


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text, for a scraper holding `Bearer <JOBBOX["METRICS_TOKEN"]>` or staff."""
    if not _may_scrape(request):
        return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


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
