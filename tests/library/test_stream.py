"""GET /api/jobbox/stream through jobbox's ASGI app, in process: a transition committed after
the stream opened reaches its owner as one Server-Sent Event, and nobody else's stream."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connection

from jobbox.http.asgi import stream_app
from tests.library.chores import doing_chore
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore

pytestmark = pytest.mark.django_db(transaction=True)

# Generous on a shared machine: an event goes out within milliseconds when it is quiet.
EVENT_WAIT_SECONDS = 20.0


def stream_scope(token: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/api/jobbox/stream", "raw_path": b"",
            "root_path": "", "query_string": b"", "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"testserver"),
                        (b"authorization", f"Token {token}".encode())]}


async def open_stream(token: str) -> tuple[ApplicationCommunicator, dict]:
    stream = ApplicationCommunicator(stream_app, stream_scope(token))
    await stream.send_input({"type": "http.request", "body": b""})
    return stream, await stream.receive_output(EVENT_WAIT_SECONDS)


async def read_until(stream: ApplicationCommunicator, needle: bytes) -> bytes:
    """The stream's bytes up to and including the first chunk holding `needle`."""
    received = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EVENT_WAIT_SECONDS
    while needle not in received:
        message = await stream.receive_output(max(0.1, deadline - loop.time()))
        received += message.get("body", b"")
    return received


@sync_to_async
def move_chore(chore_id: int, status: str, note: str) -> None:
    """A transition from a worker thread, whose database connection closes with it (the test
    database is dropped at the end of the run: no session may stay open on it)."""
    try:
        services.move_chore(chore_id, status, note=note)
    finally:
        connection.close()


async def close(stream: ApplicationCommunicator) -> None:
    await stream.send_input({"type": "http.disconnect"})
    await stream.wait(EVENT_WAIT_SECONDS)


def test_a_committed_transition_reaches_its_owners_stream_as_one_event(ann):
    chore = doing_chore(ann)

    async def scenario() -> bytes:
        stream, start = await open_stream(ann.token)
        assert start["status"] == 200
        assert (b"content-type", b"text/event-stream") in start["headers"]
        await read_until(stream, b"\n\n")  # the opening frame: subscribed from here on
        await move_chore(chore.pk, Chore.Status.DONE, note="shiny")
        received = await read_until(stream, b"shiny")
        await close(stream)
        return received

    received = asyncio.run(scenario())
    assert b"event: " in received and b"DONE" in received


def test_another_teams_transition_never_reaches_a_stream(ann, ben):
    anns, bens = doing_chore(ann), doing_chore(ben)

    async def scenario() -> bytes:
        stream, _ = await open_stream(ben.token)
        await read_until(stream, b"\n\n")
        # Ann's event is published first: had it leaked, it would arrive before Ben's own.
        await move_chore(anns.pk, Chore.Status.DONE, note="anns-secret")
        await move_chore(bens.pk, Chore.Status.DONE, note="bens-own")
        received = await read_until(stream, b"bens-own")
        await close(stream)
        return received

    assert b"anns-secret" not in asyncio.run(scenario())


def test_a_stream_without_a_valid_token_is_refused(ann):
    async def scenario() -> dict:
        stream, start = await open_stream("not-a-real-token")
        await stream.wait(EVENT_WAIT_SECONDS)
        return start

    assert asyncio.run(scenario())["status"] == 401
