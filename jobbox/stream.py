"""The job box as Server-Sent Events, resumable (DESIGN.md, "HTTP API": `GET /api/jobbox/stream`).

Served by an ASGI server (uvicorn); polling stays on the sync WSGI path (DESIGN.md, "What we
measured"). Events go where they are watched (invariant 12): each person's events are kept
in their own bounded history (a Redis stream in their slot, `jobbox.write`) and announced on
their own pub/sub channel (sharded on a cluster). Per process, one `EventHub` subscribes to
the channels of the people it has streams open for (on the first stream of a person;
unsubscribed a while after the last), over one pub/sub connection (one per node on a
cluster). People whose first streams start together join in rounds: one SUBSCRIBE per node
for all of them, then one pipeline of their newest ids. A notification makes it read that
person's history after the last id it read, once for all their streams, render and frame
each event once, and fan the bytes out in memory. A process therefore receives the
events of the people it serves, not of everyone, and an open stream costs a queue, never a
Redis connection or an OS thread.

A stream starts with the whole box (`box`, its id the newest event id at that moment) or,
with `Last-Event-ID`, replays what was missed from the person's history, or says `resync`
(the whole box, with `"recovered": false`) when that history no longer covers the id, or the
id is malformed or out of range. Subscribing happens before the snapshot or replay is read,
and events up to its id are skipped, so nothing falls in between and nothing is sent twice
(Zulip's snapshot-then-replay); a `changed` event of a job the box already showed at that
version is skipped too (the snapshot is stored before its event is recorded). After a lost
pub/sub connection the hub subscribes again and reads every watched history after its last
id, so open streams miss nothing.

Costs are bounded per person (issue 15): at most STREAMS_PER_PERSON open streams across all
processes (a per-person sorted set of stream leases), and every open stream's principal is
re-checked every STREAM_RECHECK_SECONDS through the principal cache (one MGET per thousand,
in the sync threads): a revoked token, user or membership gets a `reauthenticate` event and
the stream ends. With many streams open the keeper also freezes the heap, so Python's full
collections stop walking every open stream's objects (EventHub._tend_collector).
"""

import asyncio
import contextlib
import functools
import gc
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from jobbox import conf, keys, registry
from jobbox.box import (
    Box,
    assemble_reply,
    finished_before_ms,
    index_members,
    index_script_arguments,
    parse_reply,
    queue_job_reads,
    read_script_arguments,
    rebuild,
)
from jobbox.client import RedisUnavailable, get_redis, is_cluster
from jobbox.events import EventEntry, StreamEvent, parse_entry
from jobbox.metrics import (
    STREAM_EVENTS,
    STREAM_HISTORY_READS,
    STREAM_OWNERS_WATCHED,
    STREAMS_OPEN,
)
from jobbox.scripts import async_script

logger = logging.getLogger(__name__)

EventId = tuple[int, int]
# A Redis stream id is two unsigned 64-bit integers; anything larger is out of range.
_EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_EVENT_ID_MAX_PART = 2**64 - 1
# A pub/sub read waits this long, then asks again (and pings now and then): a dead
# connection is noticed within about two of these.
READ_BLOCK_SECONDS = 5.0
# History entries read per round trip when catching up one person's history.
HISTORY_READ_BATCH = 500
# After the hub loses Redis, it waits this long (doubling up to the cap) before reconnecting.
RECONNECT_PAUSE_SECONDS = 0.5
RECONNECT_PAUSE_MAX_SECONDS = 10.0
# A stream start waits this long for the hub's pub/sub connection before answering 503.
START_WAIT_SECONDS = 5.0
# A subscription not confirmed by Redis within this long counts as a lost connection.
SUBSCRIBE_CONFIRM_SECONDS = 5.0
# Async connections for subscriptions' newest ids, history reads, box reads and stream
# leases, shared by every stream of the process (one pipeline at a time each: ~0.2 ms a round
# trip here); the keeper's bulk upkeep (lease renewals, principal re-checks) uses the sync
# threads' connections instead. With the pub/sub connection and SYNC_THREADS, a process holds
# at most 4 Redis connections whatever the number of streams (issue 12's goal). A blocking
# pool waits for a free one instead of failing (DESIGN.md, measured).
ASYNC_POOL_CONNECTIONS = 1
# A person's channel stays subscribed this long after their last stream ended: a browser
# that reconnects (every STREAM_MAX_SECONDS, or after a blip) finds it still there.
FEED_IDLE_SECONDS = 10.0
# An open stream's lease in the per-person count: renewed every third of it, so a process
# that died stops counting against its people's cap within this long.
STREAM_LEASE_SECONDS = 60.0
# Principals re-checked (and leases renewed) per round trip: bounds how long one holds the
# shared connection (~1 ms for an MGET of 1,000 here) with 10,000 streams open.
RECHECK_BATCH = 1_000
# Channels per SUBSCRIBE / UNSUBSCRIBE command: a reconnect with 10,000 people watched sends
# ten commands, each reply read as it comes.
SUBSCRIBE_BATCH = 1_000
# Open streams from which the hub freezes the heap after each keeper round (EventHub.
# _tend_collector): below it a process is left to Python's collector as it is.
GC_FREEZE_MIN_STREAMS = 500
# A full collection (frozen objects included) this often while frozen: frees the cyclic
# garbage of streams that ended (every stream reconnects within STREAM_MAX_SECONDS, 10 min).
GC_FULL_COLLECT_SECONDS = 600.0
# A resume that would replay more than this many events is answered with a resync instead.
REPLAY_MAX_EVENTS = 5_000
# A box entry changed this recently may still have its event on the way (recorded after the
# snapshot, retried after a failure within seconds): a stream starting with that box skips
# the event if it shows nothing newer. Older ones' late events are the reconciler's repairs.
SHOWN_WINDOW_SECONDS = 60.0
# The browser's EventSource waits this long before reconnecting a dropped stream.
CLIENT_RETRY_MS = 2_000
# Heartbeats vary by this fraction of their interval either way.
HEARTBEAT_JITTER = 0.2
# Threads for the stream's synchronous work (authentication through the principal cache, a
# rebuild, a render that reads the database). Bounded and shared by every stream, so a burst
# of streams opening at once opens at most this many sync Redis and database connections,
# and no stream holds a thread of its own.
SYNC_THREADS = 2
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
    """A stream id, or None when malformed or out of Redis's range (never an exception)."""
    match = _EVENT_ID.match(raw or "")
    if not match:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms > _EVENT_ID_MAX_PART or seq > _EVENT_ID_MAX_PART:
        return None
    return ms, seq


def _id_text(event_id: EventId) -> str:
    return f"{event_id[0]}-{event_id[1]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamUnavailable(Exception):
    """The event stream's Redis cannot be reached: no stream can start."""


class TooManyStreams(Exception):
    """The person already holds STREAMS_PER_PERSON open streams."""


# --- The principal re-check -------------------------------------------------------------


@dataclass(frozen=True)
class PrincipalCheck:
    """How an open stream's access is checked again: the principal cache's key, the cached
    value it was opened with (as a dict), and how to resolve it afresh (in a sync thread)
    when that value changed or was invalidated; `still_allowed` says whether the fresh one
    keeps this stream open."""

    key: str
    expected: dict[str, Any]
    resolve: Callable[[], Any]
    still_allowed: Callable[[Any], bool]


# A queue item that ends a stream with a `reauthenticate` event.
_REVOKED = object()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A live event as its streams send it: rendered and framed once per person's feed,
    however many of their streams are open."""

    event_id: EventId
    name: str
    chunk: bytes
    job: str  # "<kind>\t<job id>"
    version: int


@dataclass(eq=False)
class Subscription:
    """One open stream: its person, its principal check and the events for it, in order."""

    tenant: str
    owner: str
    check: PrincipalCheck | None
    stream_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    released: bool = False
    lease_renewed_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class OwnerFeed:
    """A person watched by this process: their channel, the last history id read, and the
    open streams the events go to."""

    tenant: str
    owner: str
    channel: str
    cursor: str = "0-0"
    subscribers: set[Subscription] = field(default_factory=set)
    idle_since: float | None = None
    joined: bool = False
    reading: bool = False
    dirty: bool = False


# --- Pub/sub: one connection per node holding a watched person's slot ----------------------


class NotifierLost(Exception):
    """A pub/sub connection was lost, or the cluster moved a watched channel's slot."""


class Notifier:
    """This process's pub/sub connections: one on a single Redis (SUBSCRIBE); on a cluster
    one per node that owns a watched person's slot (SSUBSCRIBE: a notification reaches only
    that shard). Data messages come out of `next_channel()`; a lost connection raises there.
    A node's connection lives while it has channels: it is closed when the last one leaves,
    so a command is never sent on it unsubscribed while its reader waits (redis-py then
    health-checks the connection by reading its reply, beside the reader)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._cluster = is_cluster()
        self._pubsubs: dict[str, Any] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._channels: dict[str, set[str]] = {}  # node -> its channels
        self._node_of: dict[str, str] = {}
        self._unconfirmed: set[str] = set()
        self._all_confirmed = asyncio.Event()
        self._leaving: set[str] = set()
        self._messages: asyncio.Queue[str | BaseException] = asyncio.Queue()

    async def subscribe(self, channels: Collection[str]) -> None:
        """Subscribe to `channels`, one command per node (per SUBSCRIBE_BATCH channels), and
        wait until Redis confirmed every one: from then on, no notification of them is
        missed. One round at a time (the hub's feed lock). Raises NotifierLost, after which
        this notifier is given up (the hub connects again)."""
        by_node: dict[str, list[str]] = {}
        for channel in channels:
            by_node.setdefault(self._node_for(channel), []).append(channel)
        self._unconfirmed = set(channels)
        self._all_confirmed.clear()
        for node, batch in by_node.items():
            pubsub = self._pubsub(node)
            self._channels.setdefault(node, set()).update(batch)
            for channel in batch:
                self._leaving.discard(channel)
                self._node_of[channel] = node
            for start in range(0, len(batch), SUBSCRIBE_BATCH):
                chunk = batch[start:start + SUBSCRIBE_BATCH]
                await (pubsub.ssubscribe(*chunk) if self._cluster else pubsub.subscribe(*chunk))
            if node not in self._readers:
                self._readers[node] = asyncio.get_running_loop().create_task(self._read(pubsub))
        if not self._unconfirmed:
            return
        try:
            async with asyncio.timeout(SUBSCRIBE_CONFIRM_SECONDS):
                await self._all_confirmed.wait()
        except TimeoutError:
            lost = NotifierLost("subscription not confirmed")
            self._messages.put_nowait(lost)  # the hub's reader gives this notifier up too
            raise lost from None

    async def unsubscribe(self, channels: Collection[str]) -> None:
        by_node: dict[str, list[str]] = {}
        for channel in channels:
            node = self._node_of.pop(channel, None)
            if node is not None and node in self._pubsubs:
                by_node.setdefault(node, []).append(channel)
        for node, batch in by_node.items():
            remaining = self._channels.get(node, set())
            remaining.difference_update(batch)
            if not remaining:
                await self._close_node(node)
                continue
            self._leaving.update(batch)
            for start in range(0, len(batch), SUBSCRIBE_BATCH):
                chunk = batch[start:start + SUBSCRIBE_BATCH]
                pubsub = self._pubsubs[node]
                await (pubsub.sunsubscribe(*chunk) if self._cluster
                       else pubsub.unsubscribe(*chunk))

    async def next_channel(self) -> str:
        item = await self._messages.get()
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def connections(self) -> int:
        return len(self._pubsubs)

    def _node_for(self, channel: str) -> str:
        if not self._cluster:
            return "single"
        return str(self._client.get_node_from_key(channel).name)

    def _pubsub(self, node: str) -> Any:
        found = self._pubsubs.get(node)
        if found is None:
            if self._cluster:
                where = self._client.get_node(node_name=node)
                connection = self._new_connection(where.host, where.port)
            else:
                connection = self._new_connection(None, None)
            found = self._pubsubs[node] = connection.pubsub()
        return found

    def _new_connection(self, host: str | None, port: int | None) -> redis.asyncio.Redis:
        options: dict[str, Any] = {
            "socket_timeout": READ_BLOCK_SECONDS + conf.get("SOCKET_TIMEOUT_SECONDS") + 1,
            "socket_connect_timeout": conf.get("CONNECT_TIMEOUT_SECONDS"),
            # No silent reconnect: messages published meanwhile would be lost unnoticed; the
            # hub reconnects itself and reads every watched history after its last id.
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": READ_BLOCK_SECONDS,
        }
        if host is None:
            return redis.asyncio.Redis.from_url(conf.get("REDIS_URL"), **options)
        return redis.asyncio.Redis(host=host, port=port, **options)

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=READ_BLOCK_SECONDS)
                if message is not None:
                    self._handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the connection ends it
            self._messages.put_nowait(NotifierLost(type(exc).__name__))

    def _handle(self, message: dict[str, Any]) -> None:
        kind = _text(message["type"])
        channel = _text(message["channel"]) if message.get("channel") is not None else ""
        if kind in ("message", "smessage"):
            self._messages.put_nowait(channel)
        elif kind in ("subscribe", "ssubscribe"):
            self._unconfirmed.discard(channel)
            if not self._unconfirmed:
                self._all_confirmed.set()
        elif kind in ("unsubscribe", "sunsubscribe"):
            if channel in self._leaving:
                self._leaving.discard(channel)
            else:
                # Redis dropped it: the slot moved (a failover, a resharding).
                self._messages.put_nowait(NotifierLost("channel moved"))

    async def _close_node(self, node: str) -> None:
        task = self._readers.pop(node, None)
        if task is not None:
            task.cancel()
        pubsub = self._pubsubs.pop(node, None)
        self._channels.pop(node, None)
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                await pubsub.aclose()

    async def close(self) -> None:
        for node in list(self._pubsubs):
            await self._close_node(node)


# --- The hub ------------------------------------------------------------------------------


class EventHub:
    """The one subscriber of this process (one per event loop): feeds, their streams, and the
    periodic keeper (idle feeds, leases, principal re-checks)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._feeds: dict[tuple[str, str], OwnerFeed] = {}
        self._by_channel: dict[str, OwnerFeed] = {}
        self._ready = asyncio.Event()
        # One subscription round at a time: the joining rounds, dropping idle people and a
        # reconnect's resubscription never interleave on the notifier.
        self._feed_lock = asyncio.Lock()
        # People whose first stream is starting, waiting for the next joining round.
        self._joining: dict[tuple[str, str], asyncio.Future[OwnerFeed]] = {}
        self._joiner: asyncio.Task[None] | None = None
        self._in_round: dict[tuple[str, str], asyncio.Future[OwnerFeed]] = {}
        self._full_collect_at = time.monotonic()
        self._froze = False
        self._principals_seen: dict[str, bytes] = {}
        # Open streams, and by principal cache key: kept as streams come and go, so a keeper
        # round never rebuilds them (10,000 streams: tens of ms of the loop at once).
        self._open: set[Subscription] = set()
        self._checks: dict[str, set[Subscription]] = {}
        self._notifier: Notifier | None = None
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.events_read = 0  # history entries this process read (the bench's ratio)

    @property
    def subscriber_count(self) -> int:
        return len(self._open)

    @property
    def watched_owners(self) -> int:
        return len(self._feeds)

    def redis_connections(self) -> int:
        """Pub/sub connections open now (the async pool's are counted by the pool)."""
        return self._notifier.connections if self._notifier else 0

    async def subscribe(self, *, tenant: str, owner: str,
                        check: PrincipalCheck | None) -> Subscription:
        """A new stream of this person, subscribed before anything of theirs is read.
        Raises `StreamUnavailable`."""
        self._start_tasks()
        try:
            async with asyncio.timeout(START_WAIT_SECONDS):
                feed = await self._feed(tenant, owner)
        except (TimeoutError, NotifierLost, OSError, redis.exceptions.RedisError,
                redis.exceptions.RedisClusterException) as exc:
            raise StreamUnavailable(type(exc).__name__) from exc
        subscription = Subscription(tenant=tenant, owner=owner, check=check)
        feed.subscribers.add(subscription)
        feed.idle_since = None
        self._open.add(subscription)
        if check is not None:
            self._checks.setdefault(check.key, set()).add(subscription)
        STREAMS_OPEN.inc()
        return subscription

    def release(self, subscription: Subscription) -> None:
        """End a subscription, once (on the hub's loop)."""
        if subscription.released:
            return
        subscription.released = True
        STREAMS_OPEN.dec()
        self._open.discard(subscription)
        if subscription.check is not None:
            sharing = self._checks.get(subscription.check.key)
            if sharing is not None:
                sharing.discard(subscription)
                if not sharing:
                    del self._checks[subscription.check.key]
        feed = self._feeds.get((subscription.tenant, subscription.owner))
        if feed is not None:
            feed.subscribers.discard(subscription)
            if not feed.subscribers:
                feed.idle_since = time.monotonic()

    def _start_tasks(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        if self._keeper is None or self._keeper.done():
            self._keeper = self._loop.create_task(self._keep())

    async def _feed(self, tenant: str, owner: str) -> OwnerFeed:
        """The person's feed, subscribed and confirmed: an existing one, or one made in the
        next joining round with everyone else whose first stream starts meanwhile."""
        person = (tenant, owner)
        feed = self._feeds.get(person)
        if feed is not None:
            return feed
        joined = self._joining.get(person) or self._in_round.get(person)
        if joined is None:
            joined = self._joining[person] = self._loop.create_future()
            # A round that failed after every waiter gave up: nobody reads its error.
            joined.add_done_callback(lambda done: done.cancelled() or done.exception())
            if self._joiner is None or self._joiner.done():
                self._joiner = self._loop.create_task(self._join_waiting())
        # Shielded: one stream giving up (its start timed out) leaves the round to the others.
        return await asyncio.shield(joined)

    async def _join_waiting(self) -> None:
        """Joining rounds while people wait: everyone who queued while the previous round
        was in flight goes in the next, with one SUBSCRIBE per node and one pipeline of
        newest ids, so a burst of N new people costs a few round trips, not N."""
        while self._joining:
            await self._ready.wait()
            async with self._feed_lock:
                if self._notifier is None:
                    continue  # lost meanwhile: wait for the reconnect
                batch, self._joining = self._joining, {}
                self._in_round = batch
                try:
                    feeds = await self._join(list(batch))
                except (NotifierLost, OSError, redis.exceptions.RedisError,
                        redis.exceptions.RedisClusterException) as exc:
                    logger.warning("jobbox stream: could not subscribe %d people (%s)",
                                   len(batch), type(exc).__name__)
                    for joined in batch.values():
                        if not joined.done():
                            joined.set_exception(NotifierLost(type(exc).__name__))
                    continue
                except asyncio.CancelledError:
                    for joined in batch.values():
                        joined.cancel()
                    raise
                finally:
                    self._in_round = {}
                for person, joined in batch.items():
                    joined.set_result(feeds[person])

    async def _join(self, people: list[tuple[str, str]]) -> dict[tuple[str, str], OwnerFeed]:
        """Subscribe these people's channels, then read their newest history ids: every
        event after those ids is announced, so each feed reads from there on. A notification
        that lands in between marks its feed, which reads once it has its id."""
        notifier = self._notifier
        assert notifier is not None
        feeds = {(tenant, owner): OwnerFeed(tenant=tenant, owner=owner,
                                            channel=keys.owner_channel(tenant, owner))
                 for tenant, owner in people}
        for feed in feeds.values():
            self._by_channel[feed.channel] = feed
        channels = [feed.channel for feed in feeds.values()]
        try:
            await notifier.subscribe(channels)
        except BaseException:
            self._unregister(feeds.values())
            raise
        pipe = async_client().pipeline(transaction=False)
        for feed in feeds.values():
            pipe.xrevrange(keys.owner_events_key(feed.tenant, feed.owner), count=1)
        try:
            newest = await pipe.execute()
        except (OSError, redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
            self._unregister(feeds.values())
            with contextlib.suppress(OSError, redis.exceptions.RedisError,
                                     redis.exceptions.RedisClusterException):
                await notifier.unsubscribe(channels)  # subscribed for nobody now
            raise
        except BaseException:
            self._unregister(feeds.values())
            raise
        now = time.monotonic()
        for (person, feed), last in zip(feeds.items(), newest, strict=True):
            feed.cursor = _text(last[0][0]) if last else "0-0"
            feed.joined = True
            # Idle until its first stream attaches: a start that gave up leaves no feed behind.
            feed.idle_since = now
            self._feeds[person] = feed
            if feed.dirty:
                self._poke(feed)
        STREAM_OWNERS_WATCHED.inc(len(feeds))
        return feeds

    def _unregister(self, feeds: Collection[OwnerFeed]) -> None:
        for feed in feeds:
            if self._by_channel.get(feed.channel) is feed:
                del self._by_channel[feed.channel]

    async def _run(self) -> None:
        pause = RECONNECT_PAUSE_SECONDS
        while True:
            notifier = Notifier(await _cluster_ready(async_client()))
            try:
                async with self._feed_lock:
                    if self._feeds:
                        await notifier.subscribe([feed.channel for feed in self._feeds.values()])
                    self._notifier = notifier
                self._ready.set()
                for feed in list(self._feeds.values()):
                    self._poke(feed)  # catch up: whatever was published while away
                pause = RECONNECT_PAUSE_SECONDS
                while True:
                    feed = self._by_channel.get(await notifier.next_channel())
                    if feed is not None:
                        self._poke(feed)
            except (NotifierLost, OSError, redis.exceptions.RedisError,
                    redis.exceptions.RedisClusterException) as exc:
                logger.warning("jobbox stream: lost the notifications (%s); subscribing again",
                               type(exc).__name__)
            finally:
                self._ready.clear()
                self._notifier = None
                await notifier.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_PAUSE_MAX_SECONDS)

    def _poke(self, feed: OwnerFeed) -> None:
        """Read the feed's history after its cursor, once, however many notifications come
        meanwhile (one read covers them all)."""
        if feed.reading or not feed.joined:
            feed.dirty = True  # a joining feed reads once it knows where to start
            return
        feed.reading = True
        self._loop.create_task(self._drain(feed))

    async def _drain(self, feed: OwnerFeed) -> None:
        try:
            while True:
                feed.dirty = False
                more = await self._read_feed(feed)
                if not more and not feed.dirty:
                    return
        except (OSError, redis.exceptions.RedisError,
                redis.exceptions.RedisClusterException) as exc:
            logger.warning("jobbox stream: could not read a history (%s); its streams resume",
                           type(exc).__name__)
            self._end_feed(feed)
        finally:
            feed.reading = False

    async def _read_feed(self, feed: OwnerFeed) -> bool:
        """One batch of the feed's history after its cursor, delivered; True if there may be
        more. A history that no longer holds the cursor ends the feed's streams (they resume
        and get a resync)."""
        history = keys.owner_events_key(feed.tenant, feed.owner)
        pipe = async_client().pipeline(transaction=False)
        pipe.xrange(history, count=1)
        pipe.xrange(history, min=f"({feed.cursor}", count=HISTORY_READ_BATCH)
        oldest, entries = await pipe.execute()
        cursor = parse_event_id(feed.cursor) or (0, 0)
        if oldest and cursor != (0, 0) and (parse_event_id(_text(oldest[0][0])) or (0, 0)) > cursor:
            self._end_feed(feed)  # trimmed past our cursor: events were missed
            feed.cursor = _text(entries[-1][0]) if entries else feed.cursor
            return False
        if not entries:
            return False
        self.events_read += len(entries)
        STREAM_HISTORY_READS.inc(len(entries))
        feed.cursor = _text(entries[-1][0])
        for event in await resolve_entries(entries, tenant=feed.tenant, owner=feed.owner):
            event_id = parse_event_id(event.event_id)
            if event_id is None or not feed.subscribers:
                continue
            chunk = format_event(event.name, await off_loop_if_needed(event.as_json),
                                 event.event_id)
            self._dispatch(feed, Delivery(event_id, event.name, chunk,
                                          _job_key(event.kind, event.job_id), event.version))
        return len(entries) == HISTORY_READ_BATCH

    def _dispatch(self, feed: OwnerFeed, event: Delivery) -> None:
        limit = conf.get("STREAM_QUEUE_MAX_EVENTS")
        for subscription in list(feed.subscribers):
            if subscription.queue.qsize() >= limit:
                # Too slow to keep up: end it; the browser reconnects and resumes or resyncs.
                subscription.overflowed = True
                STREAM_EVENTS.labels("dropped_slow").inc()
                feed.subscribers.discard(subscription)
                subscription.queue.put_nowait(None)
                continue
            subscription.queue.put_nowait(event)

    def _end_feed(self, feed: OwnerFeed) -> None:
        for subscription in list(feed.subscribers):
            subscription.queue.put_nowait(None)
        feed.subscribers.clear()
        feed.idle_since = time.monotonic()

    async def _keep(self) -> None:
        """Every few seconds: unsubscribe idle people, renew stream leases, re-check every
        open stream's principal. A failure waits for the next round."""
        interval = min(conf.get("STREAM_RECHECK_SECONDS"), STREAM_LEASE_SECONDS / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._drop_idle_feeds()
                await self._renew_leases()
                await self._recheck_principals()
                self._tend_collector()
            except (OSError, RedisUnavailable, redis.exceptions.RedisError,
                    redis.exceptions.RedisClusterException, NotifierLost) as exc:
                logger.info("jobbox stream: keeper round failed (%s)", type(exc).__name__)

    async def _drop_idle_feeds(self) -> None:
        now = time.monotonic()
        async with self._feed_lock:
            idle = [person for person, feed in self._feeds.items()
                    if not feed.subscribers and feed.idle_since is not None
                    and now - feed.idle_since >= FEED_IDLE_SECONDS]
            channels = []
            for person in idle:
                feed = self._feeds.pop(person)
                self._by_channel.pop(feed.channel, None)
                channels.append(feed.channel)
            STREAM_OWNERS_WATCHED.dec(len(idle))
            if channels and self._notifier is not None:
                await self._notifier.unsubscribe(channels)

    async def _renew_leases(self) -> None:
        due_at = time.monotonic() - STREAM_LEASE_SECONDS / 3
        everyone = list(self._open)
        for start in range(0, len(everyone), RECHECK_BATCH):
            # A batch at a time, yielding in between: the loop's feeds go on meanwhile.
            due = [s for s in everyone[start:start + RECHECK_BATCH]
                   if s.lease_renewed_at <= due_at and not s.released]
            if not due:
                await asyncio.sleep(0)
                continue
            for subscription in due:
                subscription.lease_renewed_at = time.monotonic()
            await in_sync_thread(_renew_leases_now)(
                [(keys.owner_streams_key(s.tenant, s.owner), s.stream_id) for s in due])

    async def _recheck_principals(self) -> None:
        names = list(self._checks)
        seen, self._principals_seen = self._principals_seen, {}
        for start in range(0, len(names), RECHECK_BATCH):
            batch = [name for name in names[start:start + RECHECK_BATCH]
                     if name in self._checks]
            expected = {name: _expected(self._checks[name]) for name in batch}
            changed, unchanged = await in_sync_thread(_changed_principals)(
                batch, expected, seen)
            self._principals_seen.update(unchanged)
            for name in changed:
                await self._check_again(list(self._checks.get(name, ())))

    async def _check_again(self, subscriptions: list[Subscription]) -> None:
        """The principal of these streams (one cache key) was invalidated or changed:
        resolve it afresh, as a new request would, and end the streams it no longer allows."""
        if not subscriptions or subscriptions[0].check is None:
            return
        fresh = await in_sync_thread(subscriptions[0].check.resolve)()
        for subscription in subscriptions:
            assert subscription.check is not None
            if not subscription.check.still_allowed(fresh):
                subscription.queue.put_nowait(_REVOKED)

    def _tend_collector(self) -> None:
        """With many streams open, keep Python's cyclic collector off their objects.

        An open stream is ~140 long-lived objects (its request, connection, tasks, queue);
        with 10,000 open, each full collection walked 1.4 million objects and held the event
        loop ~1.3 s, every ~15 s (measured: bench.streams, gc callbacks), which was the
        whole p99 of event delivery. gc.freeze() moves everything alive now out of the
        collector's generations (refcounting still frees it), so the collections that
        follow walk only what is newer. Cyclic garbage among frozen objects waits for the
        next full collection, made every GC_FULL_COLLECT_SECONDS, whose pause is stated in
        the README."""
        now = time.monotonic()
        # A flag, not gc.get_freeze_count(): that walks every frozen object (~0.1 s here).
        if self._froze and now - self._full_collect_at >= GC_FULL_COLLECT_SECONDS:
            gc.unfreeze()
            gc.collect()
            self._full_collect_at = now
            self._froze = False
        if self.subscriber_count >= GC_FREEZE_MIN_STREAMS:
            gc.freeze()
            self._froze = True


# The keeper's bulk upkeep (a thousand leases or principals a round trip) runs in the
# stream's sync threads, on their connections: the event loop's one async connection and its
# time stay with the feeds' reads, which a 2,000-command pipeline held for tens of ms.


def _renew_leases_now(leases: list[tuple[str, str]]) -> None:
    """Push each (key, stream id) lease STREAM_LEASE_SECONDS ahead (one pipeline)."""
    pipe = get_redis().pipeline(transaction=False)
    expires_ms = int((time.time() + STREAM_LEASE_SECONDS) * 1000)
    for key, stream_id in leases:
        pipe.zadd(key, {stream_id: expires_ms}, xx=True)
        pipe.pexpire(key, int(STREAM_LEASE_SECONDS * 1000))
    pipe.execute(raise_on_error=False)


def _changed_principals(names: list[str], expected: dict[str, dict[str, Any]],
                        seen: dict[str, bytes]) -> tuple[list[str], dict[str, bytes]]:
    """Of the principal cache's `names`, those whose value is gone or no longer what their
    streams opened with, and the unchanged ones' values (the same bytes next round need no
    decoding). One MGET; one per slot on a cluster: a thousand GETs pipelined cost about ten
    times its CPU (packing and parsing each command)."""
    client = get_redis()
    values = client.mget_nonatomic(names) if is_cluster() else client.mget(names)
    changed: list[str] = []
    unchanged: dict[str, bytes] = {}
    for name, raw in zip(names, values, strict=True):
        if isinstance(raw, bytes) and (seen.get(name) == raw or _unchanged(raw, expected[name])):
            unchanged[name] = raw
        else:
            changed.append(name)
    return changed, unchanged


def _expected(subscriptions: set[Subscription]) -> dict[str, Any]:
    # Streams sharing a cache key almost always opened with the same cached value; when not,
    # a mismatch only costs a fresh resolution, which then decides for each stream.
    check = next(iter(subscriptions)).check
    assert check is not None
    return check.expected


def _unchanged(raw: Any, expected: dict[str, Any]) -> bool:
    if not isinstance(raw, bytes):
        return False
    try:
        return json.loads(raw) == expected
    except ValueError:
        return False


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}
_async_clients: dict[asyncio.AbstractEventLoop, Any] = {}


def hub() -> EventHub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = EventHub()
    return found


def async_client() -> Any:
    """This loop's async Redis client (a cluster client on a cluster), on a small blocking
    pool shared by every stream."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        options: dict[str, Any] = {
            "socket_timeout": conf.get("SOCKET_TIMEOUT_SECONDS") * 4,
            "socket_connect_timeout": conf.get("CONNECT_TIMEOUT_SECONDS"),
        }
        if is_cluster():
            client = redis.asyncio.cluster.RedisCluster.from_url(
                conf.get("REDIS_URL"), max_connections=ASYNC_POOL_CONNECTIONS + 1, **options)
        else:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                conf.get("REDIS_URL"), max_connections=ASYNC_POOL_CONNECTIONS,
                timeout=conf.get("SOCKET_TIMEOUT_SECONDS") * 40, **options)
            client = redis.asyncio.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


async def _cluster_ready(client: Any) -> Any:
    if is_cluster():
        await client.initialize()  # the slot map: which node owns each person's channel
    return client


async def resolve_entries(entries: list[Any], *, tenant: str, owner: str) -> list[StreamEvent]:
    """History entries as events of this person; entries whose snapshot was too large to
    copy are completed from the jobs' keys (one pipeline)."""
    parsed = [entry for entry_id, fields in entries
              if (entry := parse_entry(entry_id, fields)) is not None
              and entry.tenant == tenant and entry.owner == owner]
    missing = [entry for entry in parsed if entry.needs_snapshot]
    fetched: dict[int, bytes | None] = {}
    if missing:
        pipe = async_client().pipeline(transaction=False)
        for entry in missing:
            pipe.get(keys.status_key(registry.get(entry.kind).status_namespace, entry.job_id))
        for entry, raw in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
            fetched[id(entry)] = raw if isinstance(raw, bytes) else None
    events: list[StreamEvent] = []
    for entry in parsed:
        event = _resolve(entry, fetched.get(id(entry)))
        if event is not None:
            events.append(event)
    return events


def _resolve(entry: EventEntry, fetched: bytes | None) -> StreamEvent | None:
    if entry.needs_snapshot and fetched is None:
        return None  # the job's snapshot expired meanwhile: nothing to show
    return entry.resolve(fetched)


# --- Reading at stream start --------------------------------------------------------------


async def read_box_async(*, tenant: str, owner: str) -> Box:
    """`jobbox.box.read_box` for the event loop: one round trip on a single Redis (one per
    node on a cluster); a rebuild (SQL) on a miss runs in a thread."""
    box = await off_loop_if_needed(parse_reply, await _box_reply(tenant, owner),
                                   tenant=tenant, owner=owner)
    if box is None:
        await in_sync_thread(rebuild)(tenant=tenant, owner=owner)
        box = await off_loop_if_needed(parse_reply, await _box_reply(tenant, owner),
                                       tenant=tenant, owner=owner)
    return box or Box(entries=[], last_event_id="")


async def _box_reply(tenant: str, owner: str) -> list[Any]:
    client = async_client()
    if not is_cluster():
        script_keys, args = read_script_arguments(tenant, owner)
        return await async_script("read_jobbox", client)(keys=script_keys, args=args)
    script_keys, args = index_script_arguments(tenant, owner)
    index = await async_script("read_box_index", client)(keys=script_keys, args=args)
    members = index_members(index)
    job_replies: list[Any] = []
    if members:
        pipe = client.pipeline(transaction=False)
        for member, _ in members:
            queue_job_reads(pipe, member)
        job_replies = await pipe.execute(raise_on_error=False)
    reply, gone = assemble_reply(index, members, job_replies, finished_before_ms())
    if gone:
        await client.zrem(script_keys[0], *gone)
    return reply


async def replay_after(event_id: EventId, *, tenant: str,
                       owner: str) -> tuple[list[StreamEvent], EventId] | None:
    """This person's events after `event_id` and the newest id looked at, or None when the
    history no longer covers it (trimmed past it, expired, or an id beyond the newest: from
    before a Redis reset); the caller resyncs."""
    history = keys.owner_events_key(tenant, owner)
    pipe = async_client().pipeline(transaction=False)
    pipe.xrange(history, count=1)
    pipe.xrevrange(history, count=1)
    pipe.xrange(history, min=f"({_id_text(event_id)}", count=REPLAY_MAX_EVENTS + 1)
    first, last, entries = await pipe.execute(raise_on_error=False)
    if isinstance(entries, Exception) or not first or not last:
        return None  # the id is the largest there is: nothing can follow it
    oldest = parse_event_id(_text(first[0][0]))
    newest = parse_event_id(_text(last[0][0]))
    if oldest is None or newest is None or event_id < oldest or event_id > newest:
        return None
    if len(entries) > REPLAY_MAX_EVENTS:
        return None
    return await resolve_entries(entries, tenant=tenant, owner=owner), newest


def _job_key(kind: str, job_id: str) -> str:
    return f"{kind}\t{job_id}"


@functools.cache
def _events_counter(name: str) -> Any:
    # The labelled child, looked up once per event name rather than once per delivery.
    return STREAM_EVENTS.labels(name)


def format_event(name: str, data: dict[str, Any], event_id: str | None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


def _box_data(box: Box, *, resync: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"jobs": [entry.as_json() for entry in box.entries]}
    if resync:
        # Said plainly (as Centrifugo's `recovered: false`): events since the client's id
        # could not be replayed; this box replaces everything it showed.
        data["recovered"] = False
    return data


# --- One stream ---------------------------------------------------------------------------


class Stream:
    """One open stream: `events()` yields its SSE bytes; `close()` releases it (once)."""

    def __init__(self, subscription: Subscription, resume_from: EventId | None,
                 resume_requested: bool) -> None:
        self.subscription = subscription
        self._resume_from = resume_from
        self._resume_requested = resume_requested
        self._closed = False
        # Versions of the jobs the starting box showed that changed lately (see _live).
        self._shown: dict[str, int] = {}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        hub().release(self.subscription)
        await _end_lease(self.subscription)

    async def events(self) -> AsyncIterator[bytes]:
        try:
            yield f"retry: {CLIENT_RETRY_MS}\n\n".encode()
            seen = (0, 0)
            async for chunk, position in self._start():
                seen = position
                if chunk:
                    yield chunk
            async for chunk in self._live(seen):
                yield chunk
        except (OSError, redis.exceptions.RedisError, redis.exceptions.RedisClusterException,
                RedisUnavailable) as exc:
            # Redis failed while starting (RedisUnavailable: a box rebuilt in a thread found
            # the breaker open): end the stream; the browser resumes.
            logger.warning("jobbox stream: ended early (%s)", type(exc).__name__)
        finally:
            await self.close()

    async def _start(self) -> AsyncIterator[tuple[bytes, EventId]]:
        subscription = self.subscription
        replay = None
        if self._resume_from is not None:
            replay = await replay_after(self._resume_from, tenant=subscription.tenant,
                                        owner=subscription.owner)
        if replay is None:
            box = await read_box_async(tenant=subscription.tenant, owner=subscription.owner)
            name = "resync" if self._resume_requested else "box"
            self._shown = _recently_changed_versions(box)
            STREAM_EVENTS.labels(name).inc()
            yield (format_event(name, _box_data(box, resync=self._resume_requested),
                                box.last_event_id or None),
                   parse_event_id(box.last_event_id) or (0, 0))
            return
        replayed, newest = replay
        STREAM_EVENTS.labels("replayed").inc(len(replayed))
        seen = self._resume_from or (0, 0)
        for event in replayed:
            seen = parse_event_id(event.event_id) or seen
            yield (format_event(event.name, await off_loop_if_needed(event.as_json),
                                event.event_id), seen)
        # Events up to the newest id looked at were replayed (or were another job's noise).
        if newest > seen:
            yield b"", newest

    async def _live(self, seen: EventId) -> AsyncIterator[bytes]:
        heartbeat = conf.get("STREAM_HEARTBEAT_SECONDS")
        ends_at = time.monotonic() + conf.get("STREAM_MAX_SECONDS")
        while time.monotonic() < ends_at:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation (the client left) that lands as its timeout fires, and the
                # stream would beat on to nobody until STREAM_MAX_SECONDS.
                async with asyncio.timeout(heartbeat_after_seconds(heartbeat)):
                    event = await self.subscription.queue.get()
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if event is _REVOKED:
                STREAM_EVENTS.labels("reauthenticate").inc()
                yield format_event("reauthenticate", {"detail": "Access was revoked; "
                                                      "authenticate again."}, None)
                return
            if event is None:
                return  # fell behind, or the history skipped past us: the browser resumes
            if event.event_id <= seen:
                continue  # already in the snapshot or the replay
            if event.name == "changed" and self._shown.get(event.job, 0) >= event.version:
                # A job's snapshot is stored before its event is recorded (two slots,
                # jobbox.write): a box read in between shows the state, then its event
                # comes with a later id. Already shown: not sent twice.
                continue
            seen = event.event_id
            _events_counter(event.name).inc()
            yield event.chunk


def _recently_changed_versions(box: Box) -> dict[str, int]:
    """The box's jobs that changed within SHOWN_WINDOW_SECONDS, by version: only those can
    have an event still on its way (a few per box, not a copy of the box per stream)."""
    since_ms = (time.time() - SHOWN_WINDOW_SECONDS) * 1000
    return {_job_key(entry.kind, entry.job_id): entry.version for entry in box.entries
            if entry.version and entry.changed_ms >= since_ms}


async def start_stream(*, tenant: str, owner: str, resume_from: EventId | None,
                       resume_requested: bool = False,
                       check: PrincipalCheck | None = None) -> Stream:
    """A person's event stream: the box (or a replay from `resume_from`; a `resync` when a
    resume was asked for and cannot be served), then live events. Raises `TooManyStreams`
    past the person's cap, `StreamUnavailable` when Redis cannot be reached."""
    subscription = await hub().subscribe(tenant=tenant, owner=owner, check=check)
    try:
        opened = await async_script("open_stream", async_client())(
            keys=[keys.owner_streams_key(tenant, owner)],
            args=[subscription.stream_id, int(STREAM_LEASE_SECONDS * 1000),
                  conf.get("STREAMS_PER_PERSON")])
    except (OSError, redis.exceptions.RedisError,
            redis.exceptions.RedisClusterException) as exc:
        hub().release(subscription)
        raise StreamUnavailable(type(exc).__name__) from exc
    if not opened:
        hub().release(subscription)
        raise TooManyStreams(owner)
    return Stream(subscription, resume_from, resume_requested or resume_from is not None)


async def _end_lease(subscription: Subscription) -> None:
    # On failure the lease runs out by itself within STREAM_LEASE_SECONDS.
    with contextlib.suppress(OSError, redis.exceptions.RedisError,
                             redis.exceptions.RedisClusterException):
        await async_client().zrem(keys.owner_streams_key(subscription.tenant,
                                                         subscription.owner),
                                  subscription.stream_id)
