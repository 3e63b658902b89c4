"""The event stream as a plain ASGI app: no thread per open stream.

Django's ASGI handler runs each request in a context of its own, and every sync step of the
request (each middleware's `process_request`, the response's `close()`) runs in a thread
created for that context and kept until the request ends: an open stream held an OS thread
for its whole life (4,000 streams: ~2,000 threads). `stream_app` serves
`GET /api/jobbox/stream` without the middleware stack: the principal is resolved in the
stream's small shared pool (`jobbox.aio.SYNC_THREADS`), the events are sent from the event
loop, and a disconnect (`http.disconnect`) ends the stream at once. `with_event_stream` puts
it in front of a project's Django ASGI application.
"""

import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse

from jobbox import conf
from jobbox.http.views import open_stream_for, stream_head_for
from jobbox.stream import Stream

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STREAM_PATH = "/api/jobbox/stream"


def with_event_stream(django_app: ASGIApp, path: str = STREAM_PATH) -> ASGIApp:
    """`django_app`, except that `path` is served by `stream_app`."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == path:
            await stream_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app


async def stream_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await _send_response(send, HttpResponse(status=405, headers={"Allow": "GET"}))
        return
    request = ASGIRequest(scope, io.BytesIO())
    # What SessionMiddleware would attach; a signed-cookie session reads no store.
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    if scope["method"] == "HEAD":
        await _send_response(send, await stream_head_for(request), head=True)
        return
    opened = await open_stream_for(request)
    if isinstance(opened, HttpResponse):
        await _send_response(send, opened)
        return
    await _send_stream(opened, receive, send)


async def _send_response(send: Send, response: HttpResponse, *, head: bool = False) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1"))
               for name, value in response.items()]
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.content})


async def _send_stream(stream: Stream, receive: Receive, send: Send) -> None:
    async def pump() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})
        async for chunk in stream.events():
            await _send_within(send, {"type": "http.response.body", "body": chunk,
                                      "more_body": True})
        await _send_within(send, {"type": "http.response.body", "body": b""})

    async def until_disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(until_disconnected())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError, _ClientNotReading):
                await task
        await stream.close()


class _ClientNotReading(Exception):
    """A write waited past STREAM_SEND_TIMEOUT_SECONDS: the client stopped reading."""


async def _send_within(send: Send, message: MutableMapping[str, Any]) -> None:
    """`send`, given up after STREAM_SEND_TIMEOUT_SECONDS: a client that stops reading
    blocks the server's write once its buffers fill, and without a bound the stream (dropped
    for being slow or not) would hold its connection for as long as the client stays silent.
    The stream then ends unfinished and the server closes the connection."""
    try:
        await asyncio.wait_for(send(message), timeout=conf.settings().STREAM_SEND_TIMEOUT_SECONDS)
    except TimeoutError:
        raise _ClientNotReading from None
