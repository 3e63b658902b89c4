"""Connections have budgets on `make run`'s server (academy.run.uvicorn_options,
academy.http_protocol): headers within a time limit, a cap per worker answered 503 beyond,
a stream client that stops reading disconnected, `HEAD` on the stream answered without
opening one."""

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.e2e.make_run_server import serve_like_make_run
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db(transaction=True)

# Connections that never finish their headers, all open at once.
SLOW_HEADER_CONNECTIONS = 2000
# A connection the server closes is seen within this long (the header budget is 10 s; the
# machine is shared and slow).
CLOSE_SEEN_WITHIN_SECONDS = 120
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def status_of(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


@contextmanager
def slow_header_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=60))
            sock.sendall(PARTIAL_HEAD)
            sockets.append(sock)
        yield sockets


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (after any last words, such as a 408)."""
    sock.settimeout(CLOSE_SEEN_WITHIN_SECONDS)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_connections_that_never_finish_their_headers_are_capped_then_closed():
    with serve_like_make_run(HTTP_CONNECTIONS_PER_WORKER=str(SLOW_HEADER_CONNECTIONS)) as (
            base, port):
        with slow_header_connections(port, SLOW_HEADER_CONNECTIONS) as sockets:
            # The worker's connections are all taken: a whole request is told so at once,
            # instead of the worker running out of file descriptors.
            assert status_of(f"{base}/healthz") == 503
            still_open = [sock for sock in sockets if not closed_by_server(sock)]
            assert still_open == []
        assert status_of(f"{base}/healthz") == 200


def test_head_on_the_stream_answers_without_opening_one(alice, settings):
    streams_per_person = settings.JOBBOX["STREAMS_PER_PERSON"]
    stream = "/api/jobbox/stream"
    with serve_like_make_run() as (base, _):
        with ExitStack() as stack:
            answers = [stack.enter_context(urllib.request.urlopen(urllib.request.Request(
                f"{base}{stream}", method="HEAD",
                headers={"Authorization": f"Token {alice.token}"}), timeout=60))
                for _ in range(streams_per_person + 2)]  # all held open together
            assert [answer.status for answer in answers] == [200] * len(answers)
            assert answers[0].headers["Content-Type"] == "text/event-stream"
            assert list(outside_redis().scan_iter("*:streams")) == []  # no slot taken
        assert status_of(f"{base}{stream}", method="HEAD") == 401


# Linux's tcp_info starts with the connection's state; ESTABLISHED is 1 (include/net/tcp_states.h).
TCP_ESTABLISHED = 1
# A receive window this small makes the server's writes back up after a few events.
TINY_RECEIVE_BUFFER_BYTES = 2048
# Events published for the silent client: more than its receive window takes.
EVENTS_FOR_A_SILENT_CLIENT = 20


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def test_a_stream_client_that_stops_reading_is_disconnected(alice):
    from tests.video_helpers import new_video

    # The stream ends after 2 s; its last bytes cannot leave: the connection must not stay.
    with serve_like_make_run(JOBBOX_STREAM_MAX_SECONDS="2") as (_, port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_RECEIVE_BUFFER_BYTES)
        sock.connect(("127.0.0.1", port))
        with sock:
            sock.sendall(f"GET /api/jobbox/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: Token {alice.token}\r\n\r\n".encode())
            # The client reads nothing from here on; its events pile up on the server.
            for _ in range(EVENTS_FOR_A_SILENT_CLIENT):
                new_video(alice, "x" * 200)
            # Reset by the server after the keep-alive timeout and the close grace.
            deadline = time.monotonic() + CLOSE_SEEN_WITHIN_SECONDS
            while tcp_state(sock) == TCP_ESTABLISHED and time.monotonic() < deadline:
                time.sleep(0.2)
            assert tcp_state(sock) != TCP_ESTABLISHED
