"""uvicorn's HTTP/1.1 protocol (h11) with the two connection budgets it lacks.

- A header read timeout: uvicorn times out an idle kept-alive connection, but not one that
  is slow to finish its request's headers, so 500 connections that never finished theirs were
  still open after 90 s, and enough of them filled the worker's file descriptors. Here a
  connection has HEADER_READ_TIMEOUT_SECONDS from its start (or from its previous response)
  to complete a request's headers, or it is closed.
- A close that cannot hang: closing a connection whose client stopped reading waits for the
  unsent bytes as long as the client stays silent (a stream client dropped for being slow
  kept its socket 793 s). Here a close with bytes still unsent resets the connection after
  CLOSE_FLUSH_GRACE_SECONDS.

`make run` serves with `--http academy.http_protocol:BudgetedH11Protocol` (academy.run); the
connection cap (`--limit-concurrency`, a 503 beyond it) and the keep-alive timeout are
uvicorn's own options. docs/how-to/security.md lists them all.
"""

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

# A browser sends its headers in one packet; a client on a slow mobile link within a second
# or two. 10 s is generous for them and bounds how long a slow-header connection holds a
# descriptor (HTTP_HEADER_READ_TIMEOUT_SECONDS moves it).
HEADER_READ_TIMEOUT_SECONDS = float(os.environ.get("HTTP_HEADER_READ_TIMEOUT_SECONDS", "10"))
# A closing connection's last bytes (an error body, a stream's end) get this long to leave
# before the socket is aborted: a reading client takes them in milliseconds.
CLOSE_FLUSH_GRACE_SECONDS = 5.0
# SO_LINGER on with a zero timeout: close() resets the connection.
LINGER_RESET = struct.pack("ii", 1, 0)


class _AbortingTransport:
    """The connection's transport, whose `close()` cannot hang on a client that stopped
    reading: bytes still unsent (in the transport's buffer or the kernel's send queue) get
    CLOSE_FLUSH_GRACE_SECONDS to leave, then the connection is reset and they are dropped.
    A plain close would leave the kernel probing a zero window for as long as the client
    stays silent, the socket and its buffered megabytes held all that time."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._closing = False

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._unsent_bytes() == 0:
            self._transport.close()
        else:
            self._loop.call_later(CLOSE_FLUSH_GRACE_SECONDS, self._close_or_reset)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def _close_or_reset(self) -> None:
        if self._transport.is_closing():
            return
        if self._unsent_bytes() > 0:
            self._reset()
        else:
            self._transport.close()

    def _reset(self) -> None:
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: the kernel sends a reset and drops what is queued, instead of keeping
            # an orphaned socket that probes the silent client.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self._transport.abort()

    def _unsent_bytes(self) -> int:
        return self._transport.get_write_buffer_size() + _kernel_unsent_bytes(
            self._transport.get_extra_info("socket"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _kernel_unsent_bytes(sock: Any) -> int:
    """Bytes in the socket's kernel send queue not yet acknowledged by the client (Linux's
    SIOCOUTQ); 0 where it cannot be asked."""
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
    except (AttributeError, OSError, ValueError):
        return 0
    return int(struct.unpack("i", queued)[0])


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
