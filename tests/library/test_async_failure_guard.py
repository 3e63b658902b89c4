"""The event loop's failure guard (`jobbox.client.async_redis_errors`): a Redis that cannot be
reached is told as `RedisUnavailable`, like the request path's `redis_errors()`, and other
errors pass through untouched."""

import asyncio
import socket

import pytest
import redis.asyncio

from jobbox import conf
from jobbox.client import RedisUnavailable, async_redis_errors, async_redis_errors_ignored


def closed_loopback_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def ping_nobody() -> None:
    client = redis.asyncio.Redis(host="127.0.0.1", port=closed_loopback_port(),
                                 socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


def test_an_unreachable_redis_on_the_event_loop_is_redis_unavailable():
    async def guarded() -> None:
        async with async_redis_errors():
            await ping_nobody()

    with pytest.raises(RedisUnavailable, match="ConnectionError"):
        asyncio.run(guarded())


def test_a_reachable_redis_passes_the_guard_with_its_answer():
    async def guarded() -> bool:
        client = redis.asyncio.Redis.from_url(conf.settings().REDIS_URL)
        try:
            async with async_redis_errors():
                return await client.ping()
        finally:
            await client.aclose()

    assert asyncio.run(guarded()) is True


def test_an_error_that_is_not_redis_s_passes_through_the_guard():
    async def guarded() -> None:
        async with async_redis_errors():
            raise KeyError("not a Redis failure")

    with pytest.raises(KeyError):
        asyncio.run(guarded())


def test_best_effort_work_drops_a_redis_failure_but_not_another_error():
    async def cleanup_against_nobody() -> str:
        async with async_redis_errors_ignored():
            await ping_nobody()
        return "went on"

    async def cleanup_with_a_bug() -> None:
        async with async_redis_errors_ignored():
            raise ValueError("a bug")

    assert asyncio.run(cleanup_against_nobody()) == "went on"
    with pytest.raises(ValueError):
        asyncio.run(cleanup_with_a_bug())
