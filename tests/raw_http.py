"""A raw-socket HTTP client for upload tests: it sends a request head, then streams a body
while watching for an early answer, and counts how many body bytes the server let in."""

import select
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# Body bytes per send: a multipart upload's typical chunk size.
SEND_CHUNK_BYTES = 64 * 1024
# How long the head alone may wait for an early answer before the body starts streaming; a
# guard answers from the head, an unguarded server only after the whole body.
EARLY_ANSWER_WAIT_SECONDS = 5.0
# A send that blocks this long means the server stopped reading without answering.
SEND_TIMEOUT_SECONDS = 20.0
ZERO_CHUNK = b"\0" * SEND_CHUNK_BYTES


@dataclass
class RawAnswer:
    status: int | None  # None: the connection ended without an answer
    body_bytes_sent: int  # accepted by the socket before the server answered or closed
    answered_before_body: bool
    text: str


def post_streaming(base: str, path: str, *, body_bytes: int, headers: dict[str, str],
                   chunked: bool) -> RawAnswer:
    """POST `body_bytes` zero bytes to base+path (chunked, or with a Content-Length)."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=SEND_TIMEOUT_SECONDS) as sock:
        sock.sendall(_head(url.netloc, path, headers, body_bytes, chunked))
        readable, _, _ = select.select([sock], [], [], EARLY_ANSWER_WAIT_SECONDS)
        if readable:
            return _answer(sock, sent=0, early=True)
        sent = _stream_body(sock, body_bytes, chunked)
        return _answer(sock, sent=sent, early=False)


def _head(host: str, path: str, headers: dict[str, str], body_bytes: int,
          chunked: bool) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}",
             "Content-Type: multipart/form-data; boundary=xyz"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_bytes}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _stream_body(sock: socket.socket, body_bytes: int, chunked: bool) -> int:
    """Sends the body until done, an answer arrives or the server closes; bytes sent."""
    sent = 0
    frame = (b"%x\r\n" % SEND_CHUNK_BYTES) + ZERO_CHUNK + b"\r\n" if chunked else ZERO_CHUNK
    try:
        while sent < body_bytes:
            if select.select([sock], [], [], 0)[0]:
                return sent  # the server answered (or closed) mid-body
            sock.sendall(frame)
            sent += SEND_CHUNK_BYTES
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # reset or broken pipe: the server closed the connection
        pass
    return sent


def _answer(sock: socket.socket, *, sent: int, early: bool) -> RawAnswer:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    status_line = data.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 else None
    return RawAnswer(status=status, body_bytes_sent=sent, answered_before_body=early,
                     text=data.decode("latin-1"))
