"""Every HTTP view jobbox offers (docs/reference/http-api.md), thin by design: the
work lives in the library's modules.

- `JobStatusAPIView`: one job's representation; a project subclasses it per job kind.
- `JobBoxView`: `GET /api/jobbox/`, all of the caller's running and recently finished jobs.
- `job_box_stream`: `GET /api/jobbox/stream`, the same as Server-Sent Events (ASGI only).

Authentication is the principal cache (`jobbox.auth`), bodies come from `jobbox.read` and
`jobbox.box`, and a missing job, another tenant's job and a malformed id all answer the
same 404 without detail (invariant 5). `jobbox.http.urls` routes the box, the stream, and
the operational endpoints of `jobbox.http.ops` (metrics, health).
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from functools import update_wrapper
from inspect import unwrap
from typing import Any, ClassVar

from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.functional import SimpleLazyObject
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobbox import box as boxes
from jobbox import conf, keys, newest, read, registry
from jobbox.auth.drf import CachedSessionAuthentication, CachedTokenAuthentication
from jobbox.auth.principals import (
    Principal,
    adopt_fetched_principal,
    principal_for_request,
    principal_for_token,
    principal_for_user_id,
    principal_source,
    same_session_generation,
    token_in_header,
)
from jobbox.box import Box, box_from_database, read_box
from jobbox.client import RedisUnavailable
from jobbox.http import errors
from jobbox.http.schema import NOT_FOUND, UNAUTHENTICATED, BoxShape, extend_schema
from jobbox.metrics import READS
from jobbox.read import JobNotFound, read_job_snapshot
from jobbox.stream import (
    CLIENT_RETRY_SECONDS,
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


# `Accept` values for which DRF's negotiation picks the JSON renderer with no parameters (no
# `indent`): a hit with any other one goes through DRF, which answers it as it always has.
PLAIN_JSON_ACCEPTS = frozenset({None, "*/*", "application/json"})


class HitsServedDirectly(CachedAuthAPIView):
    """Serves a hot GET (a Redis hit for an active principal) with a plain Django response
    of the very bytes and headers DRF would send, skipping DRF's per-request machinery (a
    request wrapper, negotiation, authenticators, permissions); a miss, an error, an outage
    or any unusual request goes to the DRF view, with what was already read kept on the
    request. A subclass that changes that machinery keeps DRF for everything."""

    # Off: every request goes through DRF (the responses are the same; this is the slow way).
    serve_hits_directly: ClassVar[bool] = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponse]:
        drf_view = super().as_view(**initkwargs)
        if not cls._keeps_drf_defaults():
            return drf_view
        instance = cls(**initkwargs)
        instance.setup(None)
        headers = instance.default_response_headers  # Allow, as DRF's dispatch sets it

        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if cls.serve_hits_directly and not args and _plain_json_get(request):
                response = cls.answer_hit(request, **kwargs)
                if response is not None:
                    for name, value in headers.items():
                        response[name] = value
                    return response
            return drf_view(request, *args, **kwargs)

        return update_wrapper(view, drf_view)  # csrf_exempt, view_class and the like

    @classmethod
    def answer_hit(cls, request: HttpRequest, **kwargs: Any) -> HttpResponse | None:
        raise NotImplementedError

    @classmethod
    def _keeps_drf_defaults(cls) -> bool:
        """Whether a hit needs nothing of DRF but what `answer_hit` does itself."""
        base = next(k for k in cls.__mro__ if "answer_hit" in k.__dict__)
        # Unwrapped: a schema decorator (drf-spectacular) wraps `get` without changing it.
        unchanged = all(unwrap(getattr(cls, name)) == unwrap(getattr(base, name)) for name in (
            "get", "dispatch", "initial", "initialize_request", "finalize_response",
            "perform_authentication", "check_permissions", "request_principal"))
        return (unchanged and not cls.throttle_classes and cls.versioning_class is None
                and list(cls.authentication_classes) == list(base.authentication_classes)
                and list(cls.permission_classes) == [IsAuthenticated]
                and list(cls.renderer_classes) == [JSONRenderer]
                and cls.content_negotiation_class is DefaultContentNegotiation)


def _plain_json_get(request: HttpRequest) -> bool:
    meta = request.META
    return (request.method == "GET" and meta.get("HTTP_ACCEPT") in PLAIN_JSON_ACCEPTS
            and (not meta.get("QUERY_STRING") or "format" not in request.GET))


def _active_with_tenant(principal: Principal | None) -> bool:
    return principal is not None and principal.is_active and principal.tenant is not None


def _authenticate(request: HttpRequest, principal: Principal) -> None:
    """`request.user` as DRF's authentication leaves it (for middleware that reads it after
    the view), built only if something does read it."""
    request.user = SimpleLazyObject(principal.as_user)


# The JSON renderer DRF's views use: the very same bytes (its settings, its escaping).
_renderer = JSONRenderer()
# Kept on the Django request by a hot poll that did not answer: what its round trip read.
PREFETCHED_JOB_ATTRIBUTE = "_jobbox_prefetched_job"


class JobStatusAPIView(HitsServedDirectly):
    """GET one job's representation; subclasses set `kind`."""

    kind: ClassVar[str]

    @extend_schema(responses={304: None, **UNAUTHENTICATED, **NOT_FOUND})  # 200: the project's
    def get(self, request: Request, job_id: str) -> Response:
        if_none_match = request.META.get("HTTP_IF_NONE_MATCH", "")
        try:
            snapshot, progress = read_job_snapshot(
                self.kind, job_id, tenant=self.request_tenant(request),
                prefetched=_prefetched(request, self.kind, job_id),
                floor=newest.version_floor(if_none_match))
        except JobNotFound:
            raise NotFound() from None
        body: dict[str, Any] = registry.get(self.kind).render(snapshot.fields, progress)
        etag = newest.poll_etag(snapshot.version, _renderer.render(body, None))
        unchanged = newest.etag_matches(if_none_match, etag)
        response = Response(status=304) if unchanged else Response(body)
        return _with_validator(response, etag)

    @classmethod
    def answer_hit(cls, request: HttpRequest, **kwargs: Any) -> HttpResponse | None:
        """One Redis round trip (the principal, the job's snapshot, progress and negative
        entry); answered here only when it is a hit of the principal's tenant."""
        source = principal_source(request)
        job_id = kwargs.get("job_id")
        if source is None or len(kwargs) != 1 or not isinstance(job_id, str):
            return None
        job = registry.get(cls.kind)
        try:
            parsed = read.parse_job_id(job, job_id)
            raw_principal, cached = read.read_with_principal(source.key, job, parsed)
        except (JobNotFound, RedisUnavailable):
            return None  # DRF answers: the 404, or the outage path (the breaker is open now)
        setattr(request, PREFETCHED_JOB_ATTRIBUTE, (cls.kind, job_id, cached))
        principal = adopt_fetched_principal(request, source, raw_principal)
        snapshot = cached.snapshot
        if not _active_with_tenant(principal) or snapshot is None:
            return None
        assert principal is not None
        if snapshot.tenant != principal.tenant:
            return None  # DRF answers the same 404 as for a missing job
        if_none_match = request.META.get("HTTP_IF_NONE_MATCH", "")
        floor = newest.version_floor(if_none_match) if if_none_match else None
        if floor is not None and snapshot.version < floor:
            return None  # the client has seen newer: DRF's path reads the database once
        _authenticate(request, principal)
        READS.labels(job.kind, "redis").inc()
        # No media type: DRF's parameterless `application/json` renders the same, unparsed.
        body = _renderer.render(job.render(snapshot.fields, cached.progress), None)
        etag = newest.poll_etag(snapshot.version, body)
        if newest.etag_matches(if_none_match, etag):
            return _with_validator(HttpResponse(status=304), etag)
        return _with_validator(HttpResponse(body, content_type="application/json"), etag)


def _with_validator(response: HttpResponse, etag: str) -> HttpResponse:
    """A poll's `ETag` (naming the job's version) and a cache policy that makes a browser
    send it back: the client's version is then never answered with an older one."""
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def _prefetched(request: Request, kind: str, job_id: str) -> read.Cached | None:
    found = getattr(request._request, PREFETCHED_JOB_ATTRIBUTE, None)
    if found is None or found[:2] != (kind, job_id):
        return None
    return found[2]


class JobBoxView(HitsServedDirectly):
    """GET the caller's job box: zero SQL on a hit (the box's one round trip); an `ETag` over
    the body lets an unchanged box answer 304. Every job in it is checked against the
    principal's tenant and owner."""

    @extend_schema(responses={200: BoxShape, 304: None, **UNAUTHENTICATED, **NOT_FOUND})
    def get(self, request: Request) -> HttpResponse:
        principal = self.request_principal(request)
        tenant, owner = str(principal.tenant), str(principal.user_id)
        try:
            box = read_box(tenant=tenant, owner=owner)
        except RedisUnavailable:
            # Invariant 6: degraded, answered from the database (bounded queries).
            box = box_from_database(tenant=tenant, owner=owner)
        return _box_response(request, _box_at_least(request, box, tenant, owner))

    @classmethod
    def answer_hit(cls, request: HttpRequest, **kwargs: Any) -> HttpResponse | None:
        """One Redis round trip (the principal and, with this process's hint of whose box
        it is, the box); answered here only when the hint was right and the box is there."""
        source = principal_source(request)
        if source is None or kwargs:
            return None
        expected = boxes.owner_hints.get(source.key)
        try:
            raw_principal, reply = boxes.read_with_principal(source.key, expected)
        except RedisUnavailable:
            return None
        principal = adopt_fetched_principal(request, source, raw_principal)
        if not _active_with_tenant(principal):
            return None
        assert principal is not None
        actual = (str(principal.tenant), str(principal.user_id))
        boxes.owner_hints.remember(source.key, actual)
        if expected != actual:
            return None  # the first poll in this process (or a moved membership): DRF reads
        found = boxes.box_from_reply(reply, tenant=actual[0], owner=actual[1])
        if found is None:
            return None
        _authenticate(request, principal)
        return _box_response(request, _box_at_least(request, found, *actual))


def _box_at_least(request: HttpRequest | Request, box: Box, tenant: str, owner: str) -> Box:
    """The box with no entry older than the version its client names for that job."""
    header = request.META.get(VERSIONS_META)
    if not header:
        return box
    return newest.box_at_least(box, read.versions_named(header), tenant=tenant, owner=owner)


VERSIONS_META = "HTTP_" + newest.VERSIONS_HEADER.upper().replace("-", "_")


def _box_response(request: HttpRequest | Request, box: Box) -> HttpResponse:
    etag = box.etag  # a digest of the whole body: computed once
    if newest.etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(box.body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    response[EVENT_ID_HEADER] = box.last_event_id
    return response


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
    principal = await _stream_principal(request)
    if isinstance(principal, JsonResponse):
        return principal
    assert principal.tenant is not None  # checked by _stream_principal
    raw_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    try:
        return await start_stream(
            tenant=principal.tenant, owner=str(principal.user_id),
            resume_from=parse_event_id(raw_id), resume_requested=bool(raw_id),
            check=principal_check(request, principal))
    except TooManyStreams:
        limit = conf.settings().STREAMS_PER_PERSON
        response = JsonResponse(
            {"detail": f"Too many open event streams: at most {limit} per person.",
             "limit": limit}, status=429)
        response["Retry-After"] = str(max(1, round(CLIENT_RETRY_SECONDS)))
        return response
    except StreamUnavailable:
        return _stream_unavailable("The event stream is unavailable.")


async def stream_head_for(request: HttpRequest) -> HttpResponse:
    """`HEAD` on the stream: the status and headers a `GET` would start with, checked the same
    way, without opening a stream or taking one of the person's stream slots."""
    principal = await _stream_principal(request)
    if isinstance(principal, JsonResponse):
        return principal
    response = HttpResponse(status=200, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


async def _stream_principal(request: HttpRequest) -> "Principal | JsonResponse":
    """The caller's live principal inside a tenant, or the JSON error that refuses them."""
    try:
        principal = await in_sync_thread(principal_for_request)(request)
    except DatabaseError:
        return _stream_unavailable("Service temporarily unavailable.")
    if principal is None or not principal.is_active:
        return JsonResponse({"detail": "Authentication credentials were not provided."},
                            status=401)
    if principal.tenant is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    return principal


def _stream_unavailable(detail: str) -> JsonResponse:
    # Said with when to come back, like every other 503: a client (EventSource or a script)
    # retries then instead of at once.
    response = JsonResponse({"detail": detail}, status=503)
    response["Retry-After"] = str(max(1, round(CLIENT_RETRY_SECONDS)))
    return response


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
        # A password change ends sessions (Django's session hash), and logout or any other
        # bump of the user's session generation ends every session saved before it, as on
        # any request: the stream was opened with the generation its session carried.
        still_allowed=lambda fresh: (_same_access(principal, fresh)
                                     and fresh.session_hash == principal.session_hash
                                     and same_session_generation(
                                         principal.session_generation, fresh)))


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
