"""A stream whose start meets an unavailable Redis ends cleanly (the browser resumes), never
with an exception out of the server's stream loop."""

import asyncio

import pytest

from jobbox import aio, box, stream
from jobbox.client import CircuitOpen
from jobbox.stream.hub import _hubs


def test_a_box_rebuild_refused_by_the_open_breaker_ends_the_stream_cleanly(monkeypatch):
    def breaker_open(**_: object) -> None:
        raise CircuitOpen("circuit open")

    # The person's box index is missing (an empty Redis): its start rebuilds it in a thread,
    # which meets the open breaker.
    monkeypatch.setattr(box, "rebuild", breaker_open)

    async def read_all() -> list[bytes]:
        opened = await stream.start_stream(tenant="t1", owner="7", resume_from=None)
        return [chunk async for chunk in opened.events()]

    chunks = asyncio.run(read_all())

    assert chunks == [f"retry: {round(stream.CLIENT_RETRY_SECONDS * 1000)}\n\n".encode()]


@pytest.fixture(autouse=True)
def no_cached_loops():
    """Each test's event loop has its own hub and client; none outlives the test's loop."""
    yield
    _hubs.clear()
    aio._async_clients.clear()
