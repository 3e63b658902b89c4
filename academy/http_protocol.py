"""uvicorn's HTTP/1.1 protocol (h11) with the two connection budgets it lacks.

- A header read timeout: uvicorn times out an idle kept-alive connection, but not one that
  is slow to finish its request's headers, so 500 connections that never finished theirs were
  still open after 90 s, and enough of them filled the worker's file descriptors. Here a
  connection has HEADER_READ_TIMEOUT_SECONDS from its start (or from its previous response)
  to complete a request's headers, or it is closed.
- A close that cannot hang: closing a connection whose client stopped reading waits for the
  unsent bytes forever (a stream client dropped for being slow kept its socket 793 s). Here a
  close with bytes still unsent aborts the connection after CLOSE_FLUSH_GRACE_SECONDS.

`make run` serves with `--http academy.http_protocol:BudgetedH11Protocol` (academy.run); the
connection cap (`--limit-concurrency`, a 503 beyond it) and the keep-alive timeout are
uvicorn's own options. docs/how-to/security.md lists them all.
"""

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

# A browser sends its headers in one packet; a client on a slow mobile link within a second
# or two. 10 s is generous for them and bounds how long a slow-header connection holds a
# descriptor (HTTP_HEADER_READ_TIMEOUT_SECONDS moves it).
HEADER_READ_TIMEOUT_SECONDS = float(os.environ.get("HTTP_HEADER_READ_TIMEOUT_SECONDS", "10"))
# A closing connection's last bytes (an error body, a stream's end) get this long to leave
# before the socket is aborted: a reading client takes them in milliseconds.
CLOSE_FLUSH_GRACE_SECONDS = 5.0


class _AbortingTransport:
    """The connection's transport, whose `close()` aborts if unsent bytes stay stuck."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop

    def close(self) -> None:
        stuck = self._transport.get_write_buffer_size() > 0
        self._transport.close()
        if stuck:
            self._loop.call_later(CLOSE_FLUSH_GRACE_SECONDS, self._transport.abort)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BudgetedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header read timeout and closes that cannot hang."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_AbortingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_in_progress():
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._request_in_progress():
            self._arm_header_timer()  # the next request's headers get the same budget

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _request_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(HEADER_READ_TIMEOUT_SECONDS,
                                                  self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._request_in_progress():
            self.transport.close()
