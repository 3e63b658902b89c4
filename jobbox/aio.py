"""jobbox on an event loop: the loop's async Redis client and the few sync threads it lends.

The event stream (`jobbox.stream`) and the box's async reader (`jobbox.box.read_box_async`)
run on an ASGI server's event loop. Redis is reached through one small async client per loop,
shared by every stream; work that must stay synchronous (the ORM, the principal cache, a box
rebuild, the keeper's bulk upkeep) runs in SYNC_THREADS shared threads, so no stream holds a
thread or a Redis connection of its own.
"""

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections

from jobbox import conf
from jobbox.client import is_cluster

# Async connections for subscriptions' newest ids, history reads, box reads and stream
# leases, shared by every stream of the process (one pipeline at a time each: ~0.2 ms a round
# trip here); the keeper's bulk upkeep (lease renewals, principal re-checks) uses the sync
# threads' connections instead. With the pub/sub connection and SYNC_THREADS, a process holds
# at most 4 Redis connections whatever the number of streams. The pool blocks: redis-py's
# plain async pool raises MaxConnectionsError when it runs out instead of waiting (seen as
# HTTP 500s past 100 connections per worker), while a wait here is a round trip or two.
ASYNC_POOL_CONNECTIONS = 1
# Threads for the stream's synchronous work (authentication through the principal cache, a
# rebuild, a render that reads the database). Bounded and shared by every stream, so a burst
# of streams opening at once opens at most this many sync Redis and database connections,
# and no stream holds a thread of its own.
SYNC_THREADS = 2
_sync_executor = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="jobbox-sse")

T = TypeVar("T")

_async_clients: dict[asyncio.AbstractEventLoop, Any] = {}


def in_sync_thread(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`func` run in one of the stream's few sync threads, with Django's per-request database
    connection care (a connection past its age or broken is closed)."""
    def run(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False, executor=_sync_executor)


async def off_loop_if_needed(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `func` here; if it needs the database (a job kind whose render may read a large
    field), run it again in a thread: the ORM refuses to run inside the event loop."""
    try:
        return func(*args, **kwargs)
    except SynchronousOnlyOperation:
        return await in_sync_thread(func)(*args, **kwargs)


def async_client() -> Any:
    """This loop's async Redis client (a cluster client on a cluster), on a small blocking
    pool shared by every stream."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = _new_async_client()
    return client


def _new_async_client() -> Any:
    options: dict[str, Any] = {
        "socket_timeout": conf.settings().SOCKET_TIMEOUT_SECONDS * 4,
        "socket_connect_timeout": conf.settings().CONNECT_TIMEOUT_SECONDS,
    }
    if is_cluster():
        return _WaitingCluster.from_url(
            conf.settings().REDIS_URL, max_connections=ASYNC_POOL_CONNECTIONS + 1, **options)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        conf.settings().REDIS_URL, max_connections=ASYNC_POOL_CONNECTIONS,
        timeout=conf.settings().SOCKET_TIMEOUT_SECONDS * 40, **options)
    return redis.asyncio.Redis(connection_pool=pool)


# Set while a task runs a command in its turn: redis-py's cluster client runs commands of
# its own inside a pipeline (a redirected one sent again), which must not wait for a turn
# their caller holds.
_in_turn: ContextVar[bool] = ContextVar("jobbox_cluster_in_turn", default=False)


class _WaitingCluster(redis.asyncio.cluster.RedisCluster):
    """The cluster client with its commands and pipelines taking turns: redis-py's cluster
    pool raises MaxConnectionsError past a node's cap instead of waiting, so a few streams
    starting together (each subscribing, reading and taking its lease) were refused with a
    503 though Redis was fine. No more commands are in flight than a node may have
    connections, so a command past the cap waits its turn instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = asyncio.Semaphore(kwargs.get("max_connections", ASYNC_POOL_CONNECTIONS))

    async def _take_turn(self, call: Callable[[], Awaitable[T]]) -> T:
        if _in_turn.get():
            return await call()
        async with self._turns:
            token = _in_turn.set(True)
            try:
                return await call()
            finally:
                _in_turn.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await self._take_turn(lambda: super(_WaitingCluster, self).execute_command(
            *args, **kwargs))

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)
        execute = pipe.execute

        async def execute_in_turn(*call_args: Any, **call_kwargs: Any) -> Any:
            return await self._take_turn(lambda: execute(*call_args, **call_kwargs))

        pipe.execute = execute_in_turn
        return pipe


async def cluster_ready(client: Any) -> Any:
    """`client`, with a cluster client's slot map read (which node owns each channel)."""
    if is_cluster():
        await client.initialize()
    return client
