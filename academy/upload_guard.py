"""Upload bodies refused before they are read (docs/explanation/invariants.md,
invariant 10: "bodies are refused before they are read").

Under uvicorn, Django's ASGI handler reads a whole request body into a temporary file before
any middleware or view runs, so a size check in a view comes too late: an anonymous client
could fill the disk (1.1 GB was accepted before the 401). For the upload paths this module
answers from the request's head alone:

- no valid principal (token header or session cookie): 401, before one body byte is read;
- a declared `Content-Length` over the path's limit: 413, at once;
- no declared length (chunked): the body is counted as it streams and cut off past the limit
  with a 413.

Any other request's body (a sign-in form, a stray POST to a poll) is bounded the same way by
Django's limit for non-file bodies: Django would otherwise spool a multipart file sent to
any path whose view reads its form.

Every ASGI refusal carries `Connection: close`, so the server drops the connection instead
of draining the rest of the body. `UploadGuard` wraps the ASGI app (academy.asgi);
`UploadGuardMiddleware` does the same under WSGI (gunicorn), where Django already bounds
`wsgi.input` by the declared length (a body without one reads as empty).

The jobbox imports live in `_principal_for_request` only: the library is being re-cut, so
this is the one line to re-point.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.cookie import parse_cookie

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The multipart envelope and the small fields around the file (title, job type): the views
# allow the same overhead over the file limit.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Every other request (a sign-in form, a poll) may carry at most Django's own limit for
# non-file bodies, DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB by default): Django does not apply it
# to multipart files, which it would spool to disk on any path that reads its form.
DEFAULT_OTHER_BODY_MAX_BYTES = 2_621_440
VIDEO_UPLOAD_PATH = "/api/videos/"
AI_JOB_UPLOAD_PATH = "/api/ai/jobs/"
# DRF's own words for the same refusals, so a client sees one body whichever layer answers.
NOT_AUTHENTICATED = "Authentication credentials were not provided."


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    detail: str
    code: str


def upload_limit_bytes(path: str) -> int | None:
    """The largest body (file plus multipart overhead) a POST to `path` may send; None for
    a path that takes no upload."""
    if path == VIDEO_UPLOAD_PATH:
        return int(settings.VIDEO_MAX_UPLOAD_BYTES) + MULTIPART_OVERHEAD_BYTES
    if path == AI_JOB_UPLOAD_PATH:
        return int(settings.AI_UPLOAD_MAX_BYTES) + MULTIPART_OVERHEAD_BYTES
    return None


def other_body_limit_bytes() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or DEFAULT_OTHER_BODY_MAX_BYTES)


def _principal_for_request(request: HttpRequest) -> Any:
    """The jobbox principal of a request (its token header or its session), or None."""
    from jobbox import principal_for_request  # the one place this module names jobbox

    return principal_for_request(request)


def refusal_before_body(request: HttpRequest, limit: int) -> Refusal | None:
    """Why an upload must be refused from its head alone (who sends it, how long it says it
    is), or None to let it through. Reads no body byte."""
    principal = _principal_for_request(request)
    if principal is None or not principal.is_active:
        return Refusal(401, NOT_AUTHENTICATED, "not_authenticated")
    return length_refusal(request.META.get("CONTENT_LENGTH") or "", limit)


def length_refusal(declared: str, limit: int) -> Refusal | None:
    """A refusal for a declared Content-Length that is malformed or over `limit`."""
    if not declared:
        return None
    if not declared.isdigit():
        return Refusal(400, "The Content-Length header is malformed.", "bad_length")
    return too_large(limit) if int(declared) > limit else None


def too_large(limit: int) -> Refusal:
    return Refusal(413, f"The request body is larger than the limit of {limit} bytes.",
                   "file_too_large")


def _declared_length(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return value.decode("latin-1")
    return ""


def _head_request(scope: Scope) -> HttpRequest:
    """A body-less HttpRequest carrying the scope's headers and its session (from the
    cookie; the signed-cookie engine decodes it without any store)."""
    request = HttpRequest()
    request.method = scope["method"]
    request.path = request.path_info = scope["path"]
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        request.META[key] = f"{request.META[key]},{value}" if key in request.META else value
    request.COOKIES = parse_cookie(request.META.get("HTTP_COOKIE", ""))
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    return request


def _asgi_refusal_check(scope: Scope, limit: int) -> Refusal | None:
    try:
        return refusal_before_body(_head_request(scope), limit)
    except DatabaseError:
        # Redis missed and the database is away: the view could not answer either.
        return Refusal(503, "The service is unavailable; try again shortly.", "unavailable")


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"detail": refusal.detail, "code": refusal.code}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               # The server closes the connection instead of draining the unread body.
               (b"connection", b"close")]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Token"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _CountedBody:
    """The request body as it streams, cut off (a disconnect, for the app) past `limit`."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive, self.limit = receive, limit
        self.received_bytes = 0
        self.cut_off = False

    async def __call__(self) -> Message:
        if self.cut_off:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.received_bytes += len(message.get("body", b""))
            if self.received_bytes > self.limit:
                self.cut_off = True
                return {"type": "http.disconnect"}
        return message


class UploadGuard:
    """ASGI wrapper: the upload paths are authenticated and bounded before their body is
    read; every other body is bounded by `other_body_limit_bytes()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = upload_limit_bytes(scope["path"]) if scope["method"] == "POST" else None
        if limit is None:
            await self._other(scope, receive, send)
            return
        # One thread for the check and for Django's own sync work on this request, so the
        # database connection a principal fill may open is the request's, closed with it.
        async with ThreadSensitiveContext():
            refusal = await sync_to_async(_asgi_refusal_check)(scope, limit)
            if refusal is not None:
                await _send_refusal(send, refusal)
                return
            await self._bounded(scope, receive, send, limit)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = other_body_limit_bytes()
        refusal = length_refusal(_declared_length(scope), limit)
        if refusal is not None:
            await _send_refusal(send, refusal)
            return
        await self._bounded(scope, receive, send, limit)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        body = _CountedBody(receive, limit)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, body, tracked_send)
        if body.cut_off and not started:
            await _send_refusal(send, too_large(limit))


class UploadGuardMiddleware:
    """The same checks under WSGI, before anything touches `request.body` or `FILES`.

    Sits after SessionMiddleware (the session login needs its session). Django's WSGIRequest
    reads at most the declared `Content-Length` from `wsgi.input`, so with the length checked
    here the body is bounded as it streams too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = upload_limit_bytes(request.path_info) if request.method == "POST" else None
        if limit is None:
            refusal = length_refusal(request.META.get("CONTENT_LENGTH") or "",
                                     other_body_limit_bytes())
        else:
            refusal = refusal_before_body(request, limit)
        if refusal is not None:
            return _refusal_response(refusal)
        return self.get_response(request)


def _refusal_response(refusal: Refusal) -> HttpResponse:
    # No `Connection: close` here: WSGI forbids hop-by-hop headers (gunicorn's sync workers
    # close after every response anyway).
    response = JsonResponse({"detail": refusal.detail, "code": refusal.code},
                            status=refusal.status)
    if refusal.status == 401:
        response["WWW-Authenticate"] = "Token"
    return response
