"""The job box as Server-Sent Events, resumable (DESIGN.md, "HTTP API": `GET /api/jobbox/stream`).

Served by an ASGI server (uvicorn); polling stays on the sync WSGI path (DESIGN.md, "What we
measured"). Per process, ONE Redis connection reads the event stream (`XREAD BLOCK`) and
fans each event out in memory to the open streams of its tenant and owner (`EventHub`); an
open stream costs a queue, never a Redis connection. A stream starts with the whole box
(`box`, its id the last event id at that moment) or, with `Last-Event-ID`, replays what was
missed from the bounded Redis stream, or says `resync` (with the whole box) when that id is
older than what is kept. Subscribing happens before the snapshot or replay is read, and
events up to its id are skipped, so nothing falls in between (Zulip's snapshot-then-replay).
Heartbeats are SSE comments at a jittered interval; a stream ends after a while and the
browser reconnects and resumes, which also checks authentication again.
"""

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections
from django.http import StreamingHttpResponse

from jobbox import conf, events, keys
from jobbox.box import Box, parse_reply, read_script_arguments, rebuild
from jobbox.events import JobEvent
from jobbox.metrics import STREAM_EVENTS, STREAMS_OPEN
from jobbox.scripts import async_script

logger = logging.getLogger(__name__)

EventId = tuple[int, int]
_EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
# XREAD blocks this long, then asks again: a dead connection is noticed within about this.
READ_BLOCK_MS = 5_000
# Entries taken per XREAD: bounds one fan-out step when many events arrive together.
READ_BATCH_EVENTS = 500
# After the hub loses Redis, it waits this long (doubling up to the cap) before reconnecting.
RECONNECT_PAUSE_SECONDS = 0.5
RECONNECT_PAUSE_MAX_SECONDS = 10.0
# Connections for replays and box reads at stream start (shared by every stream of the
# process); a blocking pool waits for a free one instead of failing (DESIGN.md, measured).
START_POOL_CONNECTIONS = 8
# A resume that would replay more than this many events is answered with a resync instead.
REPLAY_MAX_EVENTS = 5_000
# The browser's EventSource waits this long before reconnecting a dropped stream.
CLIENT_RETRY_MS = 2_000
# Heartbeats vary by this fraction of their interval either way.
HEARTBEAT_JITTER = 0.2
# Threads for the stream's synchronous work (authentication through the principal cache, a
# rebuild, a render that reads the database). Bounded, so a burst of streams opening at once
# opens at most this many sync Redis and database connections, not one per stream start.
SYNC_THREADS = 4
_sync_executor = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="jobbox-sse")


T = TypeVar("T")


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


def heartbeat_after_seconds(interval_seconds: float) -> float:
    """The next heartbeat's wait: the interval +-20 %, so streams opened together (a deploy,
    a network blip) do not all beat in the same instant."""
    return interval_seconds * random.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER)


def parse_event_id(raw: str | None) -> EventId | None:
    match = _EVENT_ID.match(raw or "")
    return (int(match[1]), int(match[2])) if match else None


@dataclass(eq=False)
class Subscription:
    """One open stream: its tenant and owner, and the events for it, in order."""

    tenant: str
    owner: str
    queue: asyncio.Queue[JobEvent | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    released: bool = False


class EventHub:
    """The one reader of the Redis event stream in this process (one per event loop)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._subscribers: set[Subscription] = set()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._release_lock = threading.Lock()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(self, *, tenant: str, owner: str) -> Subscription:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self._ready.wait()
        subscription = Subscription(tenant=tenant, owner=owner)
        self._subscribers.add(subscription)
        STREAMS_OPEN.inc()
        return subscription

    def release(self, subscription: Subscription) -> None:
        """End a subscription, once, from the loop or from another thread (Django closes a
        response in a worker thread)."""
        with self._release_lock:
            if subscription.released:
                return
            subscription.released = True
        STREAMS_OPEN.dec()
        self._loop.call_soon_threadsafe(self._subscribers.discard, subscription)

    async def _run(self) -> None:
        pause = RECONNECT_PAUSE_SECONDS
        while True:
            client = redis.asyncio.Redis.from_url(
                conf.get("REDIS_URL"),
                socket_timeout=READ_BLOCK_MS / 1000 + conf.get("SOCKET_TIMEOUT_SECONDS") + 1,
                socket_connect_timeout=conf.get("CONNECT_TIMEOUT_SECONDS"),
                single_connection_client=True,
            )
            try:
                await self._read_forever(client)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.ResponseError) as exc:
                logger.warning("jobbox stream: lost the event stream (%s); streams end and "
                               "resume", type(exc).__name__)
            finally:
                self._ready.clear()
                await client.aclose()
            self._end_all()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_PAUSE_MAX_SECONDS)

    async def _read_forever(self, client: redis.asyncio.Redis) -> None:
        stream_key = keys.events_key()
        # Start from the newest entry that exists now, resolved before anyone subscribes: a
        # stream's replay or snapshot (read after subscribing) then never ends before it.
        last = await client.xrevrange(stream_key, count=1)
        cursor = last[0][0] if last else b"0-0"
        self._ready.set()
        while True:
            reply = await client.xread({stream_key: cursor}, block=READ_BLOCK_MS,
                                       count=READ_BATCH_EVENTS)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    cursor = entry_id
                    event = events.from_entry(entry_id, fields)
                    if event is not None:
                        self._dispatch(event)

    def _dispatch(self, event: JobEvent) -> None:
        limit = conf.get("STREAM_QUEUE_MAX_EVENTS")
        for subscription in list(self._subscribers):
            if subscription.tenant != event.tenant or subscription.owner != event.owner:
                continue
            if subscription.queue.qsize() >= limit:
                # Too slow to keep up: end it; the browser reconnects and resumes or resyncs.
                subscription.overflowed = True
                STREAM_EVENTS.labels("dropped_slow").inc()
                self._subscribers.discard(subscription)
                subscription.queue.put_nowait(None)
                continue
            subscription.queue.put_nowait(event)

    def _end_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.queue.put_nowait(None)
        self._subscribers.clear()


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}
_start_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}


def hub() -> EventHub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = EventHub()
    return found


def _start_client() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    client = _start_clients.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            conf.get("REDIS_URL"), max_connections=START_POOL_CONNECTIONS,
            timeout=conf.get("SOCKET_TIMEOUT_SECONDS") * 8,
            socket_timeout=conf.get("SOCKET_TIMEOUT_SECONDS") * 4,
            socket_connect_timeout=conf.get("CONNECT_TIMEOUT_SECONDS"),
        )
        client = _start_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


async def read_box_async(*, tenant: str, owner: str) -> Box:
    """`jobbox.box.read_box` for the event loop: the same script; a rebuild (SQL) on a miss
    runs in a thread."""
    client = _start_client()
    script_keys, args = read_script_arguments(tenant, owner)
    reply = await async_script("read_jobbox", client)(keys=script_keys, args=args)
    box = await off_loop_if_needed(parse_reply, reply, tenant=tenant, owner=owner)
    if box is None:
        await in_sync_thread(rebuild)(tenant=tenant, owner=owner)
        reply = await async_script("read_jobbox", client)(keys=script_keys, args=args)
        box = await off_loop_if_needed(parse_reply, reply, tenant=tenant, owner=owner)
    return box or Box(entries=[], last_event_id="")


async def replay_after(event_id: EventId, *, tenant: str,
                       owner: str) -> tuple[list[JobEvent], EventId] | None:
    """This person's events after `event_id` and the newest id looked at, or None when events
    after it may have been dropped from the bounded stream (the caller resyncs)."""
    stream_key = keys.events_key()
    pipe = _start_client().pipeline(transaction=True)
    pipe.xrange(stream_key, count=1)
    pipe.xrevrange(stream_key, count=1)
    pipe.xrange(stream_key, min=f"({event_id[0]}-{event_id[1]}", count=REPLAY_MAX_EVENTS + 1)
    first, last, entries = await pipe.execute()
    if not first or not last:
        return None
    oldest = parse_event_id(first[0][0].decode())
    newest = parse_event_id(last[0][0].decode())
    if oldest is None or newest is None or event_id < oldest or event_id > newest:
        return None  # trimmed past it, or from before this Redis was reset
    if len(entries) > REPLAY_MAX_EVENTS:
        return None
    replayed = [event for entry_id, fields in entries
                if (event := events.from_entry(entry_id, fields)) is not None
                and event.tenant == tenant and event.owner == owner]
    return replayed, newest


def format_event(name: str, data: dict[str, Any], event_id: str | None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


def _box_data(box: Box) -> dict[str, Any]:
    return {"jobs": [entry.as_json() for entry in box.entries]}


async def _event_source(subscription: Subscription, resume_from: EventId | None,
                        ) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n".encode()
        replay = None
        if resume_from is not None:
            replay = await replay_after(resume_from, tenant=subscription.tenant,
                                        owner=subscription.owner)
        if replay is None:
            box = await read_box_async(tenant=subscription.tenant, owner=subscription.owner)
            name = "resync" if resume_from is not None else "box"
            STREAM_EVENTS.labels(name).inc()
            yield format_event(name, _box_data(box), box.last_event_id or None)
            seen = parse_event_id(box.last_event_id) or (0, 0)
        else:
            replayed, seen = replay
            STREAM_EVENTS.labels("replayed").inc(len(replayed))
            for event in replayed:
                yield format_event(event.name, await off_loop_if_needed(event.as_json),
                                   event.event_id)
        heartbeat = conf.get("STREAM_HEARTBEAT_SECONDS")
        ends_at = time.monotonic() + conf.get("STREAM_MAX_SECONDS")
        while time.monotonic() < ends_at:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation (the client left) that lands as its timeout fires, and the
                # stream would beat on to nobody until STREAM_MAX_SECONDS.
                async with asyncio.timeout(heartbeat_after_seconds(heartbeat)):
                    event = await subscription.queue.get()
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if event is None:
                return  # the hub lost Redis or this stream fell behind: the browser resumes
            event_id = parse_event_id(event.event_id)
            if event_id is None or event_id <= seen:
                continue  # already in the snapshot or the replay
            seen = event_id
            STREAM_EVENTS.labels(event.name).inc()
            yield format_event(event.name, await off_loop_if_needed(event.as_json),
                               event.event_id)
    finally:
        hub().release(subscription)


class EventStreamResponse(StreamingHttpResponse):
    """An SSE response that releases its subscription when Django closes it.

    A client that disconnects while an event is being sent leaves the event generator
    suspended at a `yield` (Django cancels the send, not the generator, and closes only
    synchronous iterators): without this, the subscription would live until the generator is
    garbage-collected.
    """

    def __init__(self, owner: EventHub, subscription: Subscription,
                 source: AsyncIterator[bytes]) -> None:
        super().__init__(source, content_type="text/event-stream")
        self._hub = owner
        self._subscription = subscription

    def close(self) -> None:
        self._hub.release(self._subscription)
        super().close()


class StreamUnavailable(Exception):
    """The event stream's Redis cannot be reached: no stream can start."""


async def start_stream(*, tenant: str, owner: str,
                       resume_from: EventId | None) -> EventStreamResponse:
    """A person's event stream: the box (or a replay from `resume_from`), then live events.
    Raises `StreamUnavailable`."""
    try:
        subscription = await hub().subscribe(tenant=tenant, owner=owner)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StreamUnavailable(type(exc).__name__) from exc
    response = EventStreamResponse(hub(), subscription, _event_source(subscription, resume_from))
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass events on as they come
    return response
