"""redis-py 8 changed defaults that touch long-lived connections (a 5 s socket timeout, a
pool capped at 100): jobbox sets its own on every client, so the stream's pub/sub reads and
its shared pool behave the same on redis-py 5 through 8 (`make test-matrix` runs this on
both). Library only: nothing here needs the contrib app."""

import asyncio
import contextlib
import threading

import redis

from jobbox import aio, conf, keys
from jobbox import stream as streams
from jobbox.client import get_redis

# What redis-py 8 defaults a connection's socket timeout to; jobbox must not depend on it.
REDIS_PY_8_DEFAULT_SOCKET_TIMEOUT_SECONDS = 5.0


def test_a_pub_sub_connection_idle_past_redis_py_8s_socket_timeout_still_delivers():
    channel = keys.owner_channel("north", "idle-person")

    async def idle_then_publish() -> str:
        notifier = streams.Notifier(streams.async_client())
        try:
            await notifier.subscribe([channel])
            waiting = asyncio.ensure_future(notifier.next_channel())
            # Idle longer than redis-py 8's default timeout before anything is published:
            # a read cut by that timeout ends the notifier (`next_channel` raises).
            await asyncio.sleep(REDIS_PY_8_DEFAULT_SOCKET_TIMEOUT_SECONDS + 1.5)
            get_redis().publish(channel, "changed")
            return await asyncio.wait_for(waiting, timeout=30)
        finally:
            await notifier.close()

    assert asyncio.run(idle_then_publish()) == channel


def test_every_jobbox_client_sets_its_own_socket_timeout():
    sync_kwargs = get_redis().connection_pool.connection_kwargs
    assert sync_kwargs["socket_timeout"] == conf.settings().SOCKET_TIMEOUT_SECONDS

    async def async_pool() -> redis.asyncio.ConnectionPool:
        return streams.async_client().connection_pool

    pool = asyncio.run(async_pool())
    assert pool.connection_kwargs["socket_timeout"] == conf.settings().SOCKET_TIMEOUT_SECONDS * 4


def test_the_streams_share_a_small_blocking_pool_far_below_redis_py_8s_cap():
    async def async_pool() -> redis.asyncio.ConnectionPool:
        return streams.async_client().connection_pool

    pool = asyncio.run(async_pool())
    # However many streams a process holds (10,000 measured), they wait for this pool's
    # connections instead of opening more: redis-py 8's cap of 100 is never reached.
    assert isinstance(pool, redis.asyncio.BlockingConnectionPool)
    assert pool.max_connections == aio.ASYNC_POOL_CONNECTIONS < 100


def test_requests_held_by_a_slow_redis_open_no_more_connections_than_the_cap(settings):
    """Twelve requests at once each wait on Redis (a blocking pop stands in for a slow
    server); the process opens at most REDIS_MAX_CONNECTIONS, and the others wait for one
    (or give up as on any Redis failure). An uncapped pool would open twelve and keep them."""
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_MAX_CONNECTIONS": 3}
    client = get_redis()
    start = threading.Barrier(12)

    def slow_request() -> None:
        start.wait()
        with contextlib.suppress(redis.exceptions.ConnectionError):
            client.blpop(["jobbox-test:nothing"], timeout=0.1)

    threads = [threading.Thread(target=slow_request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listed = redis.Redis.from_url(conf.settings().REDIS_URL).client_list()
    assert 1 <= len([c for c in listed if c["cmd"] == "blpop"]) <= 3
    assert isinstance(client.connection_pool, redis.BlockingConnectionPool)
