"""The hub: this process's one subscriber (one per event loop), between Redis and the streams.

Per process, the hub subscribes to the channels of the people it has streams open for (on
the first stream of a person; unsubscribed FEED_IDLE_SECONDS after the last), over the
notifier's connections (`jobbox.stream.notifier`). People whose first streams start
together join in rounds: one SUBSCRIBE per node for all of them (on a cluster, one SSUBSCRIBE
per slot: it refuses channels of several), then one pipeline of their newest ids. A
notification makes it read that person's history after the last id it read, once for all
their streams, render and frame each event once, and fan the bytes out in
memory: an open stream costs a queue, never a Redis connection or an OS thread. After a lost
pub/sub connection it subscribes again and reads every watched history after its last id,
so open streams miss nothing. The upkeep of open streams is the keeper's
(`jobbox.stream.keeper`).
"""

import asyncio
import logging
import time
from collections.abc import Collection

from jobbox import conf, keys
from jobbox.aio import async_client, cluster_ready, off_loop_if_needed
from jobbox.client import RedisUnavailable, async_redis_errors, async_redis_errors_ignored
from jobbox.metrics import STREAM_EVENTS, STREAM_HISTORY_READS, STREAM_OWNERS_WATCHED, STREAMS_OPEN
from jobbox.stream.history import HISTORY_READ_BATCH, entries_after, newest_ids, resolve_entries
from jobbox.stream.keeper import Keeper
from jobbox.stream.model import (
    Delivery,
    OwnerFeed,
    PrincipalCheck,
    StreamUnavailable,
    Subscription,
    format_event,
    job_key,
    parse_event_id,
    text,
)
from jobbox.stream.notifier import Notifier, NotifierLost

logger = logging.getLogger(__name__)

# After the hub loses Redis, it waits this long (doubling up to the cap) before reconnecting.
RECONNECT_PAUSE_SECONDS = 0.5
RECONNECT_PAUSE_MAX_SECONDS = 10.0
# A stream start waits this long for the hub's pub/sub connection before answering 503.
START_WAIT_SECONDS = 5.0
# A person's channel stays subscribed this long after their last stream ended: a browser
# that reconnects (every STREAM_MAX_SECONDS, or after a blip) finds it still there.
FEED_IDLE_SECONDS = 10.0

Person = tuple[str, str]  # (tenant, owner)


class EventHub:
    """Feeds (the people watched), their streams, and the keeper of both."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._feeds: dict[Person, OwnerFeed] = {}
        self._by_channel: dict[str, OwnerFeed] = {}
        self._ready = asyncio.Event()
        # One subscription round at a time: the joining rounds, dropping idle people and a
        # reconnect's resubscription never interleave on the notifier.
        self._feed_lock = asyncio.Lock()
        # People whose first stream is starting, waiting for the next joining round.
        self._joining: dict[Person, asyncio.Future[OwnerFeed]] = {}
        self._joiner: asyncio.Task[None] | None = None
        self._in_round: dict[Person, asyncio.Future[OwnerFeed]] = {}
        self.keeper = Keeper()
        self._notifier: Notifier | None = None
        self._task: asyncio.Task[None] | None = None
        self._keeper_task: asyncio.Task[None] | None = None
        self.events_read = 0  # history entries this process read (the bench's ratio)

    @property
    def subscriber_count(self) -> int:
        return self.keeper.open_streams

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
            # Not subscribed within the wait counts as Redis unavailable: the deadline's
            # error is an OSError, translated like a socket's.
            async with async_redis_errors(), asyncio.timeout(START_WAIT_SECONDS):
                feed = await self._feed(tenant, owner)
        except (NotifierLost, RedisUnavailable) as exc:
            raise StreamUnavailable(str(exc)) from exc
        subscription = Subscription(tenant=tenant, owner=owner, check=check)
        feed.subscribers.add(subscription)
        feed.idle_since = None
        self.keeper.add(subscription)
        STREAMS_OPEN.inc()
        return subscription

    def release(self, subscription: Subscription) -> None:
        """End a subscription, once (on the hub's loop)."""
        if subscription.released:
            return
        subscription.released = True
        STREAMS_OPEN.dec()
        self.keeper.discard(subscription)
        feed = self._feeds.get((subscription.tenant, subscription.owner))
        if feed is not None:
            feed.subscribers.discard(subscription)
            if not feed.subscribers:
                feed.idle_since = time.monotonic()

    def _start_tasks(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        if self._keeper_task is None or self._keeper_task.done():
            self._keeper_task = self._loop.create_task(self.keeper.run(self.drop_idle_feeds))

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
        was in flight goes in the next, with one SUBSCRIBE per node (per slot on a cluster)
        and one pipeline of newest ids, so a burst of N new people costs a few round trips on
        a single Redis, not N."""
        while self._joining:
            await self._ready.wait()
            async with self._feed_lock:
                if self._notifier is None:
                    continue  # lost meanwhile: wait for the reconnect
                batch, self._joining = self._joining, {}
                self._in_round = batch
                try:
                    async with async_redis_errors():
                        feeds = await self._join(list(batch))
                except (NotifierLost, RedisUnavailable) as exc:
                    logger.warning("jobbox stream: could not subscribe %d people (%s)",
                                   len(batch), exc)
                    for joined in batch.values():
                        if not joined.done():
                            joined.set_exception(NotifierLost(str(exc)))
                    continue
                except asyncio.CancelledError:
                    for joined in batch.values():
                        joined.cancel()
                    raise
                finally:
                    self._in_round = {}
                for person, joined in batch.items():
                    joined.set_result(feeds[person])

    async def _join(self, people: list[Person]) -> dict[Person, OwnerFeed]:
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
            async with async_redis_errors():
                cursors = await newest_ids(list(feeds))
        except RedisUnavailable:
            self._unregister(feeds.values())
            async with async_redis_errors_ignored():
                await notifier.unsubscribe(channels)  # subscribed for nobody now
            raise
        except BaseException:
            self._unregister(feeds.values())
            raise
        now = time.monotonic()
        for (person, feed), cursor in zip(feeds.items(), cursors, strict=True):
            feed.cursor = cursor
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
            notifier = Notifier(await cluster_ready(async_client()))
            try:
                async with async_redis_errors():
                    await self._resubscribe(notifier)
                    pause = RECONNECT_PAUSE_SECONDS
                    await self._listen(notifier)
            except (NotifierLost, RedisUnavailable) as exc:
                logger.warning("jobbox stream: lost the notifications (%s); subscribing again",
                               exc)
            finally:
                self._ready.clear()
                self._notifier = None
                await notifier.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_PAUSE_MAX_SECONDS)

    async def _resubscribe(self, notifier: Notifier) -> None:
        """Every watched person subscribed on a new `notifier`, then caught up: whatever was
        published while away is read from their histories."""
        async with self._feed_lock:
            if self._feeds:
                await notifier.subscribe([feed.channel for feed in self._feeds.values()])
            self._notifier = notifier
        self._ready.set()
        for feed in list(self._feeds.values()):
            self._poke(feed)

    async def _listen(self, notifier: Notifier) -> None:
        """Notifications until the connection is lost (NotifierLost)."""
        while True:
            feed = self._by_channel.get(await notifier.next_channel())
            if feed is not None:
                self._poke(feed)

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
            async with async_redis_errors():
                while True:
                    feed.dirty = False
                    more = await self._read_feed(feed)
                    if not more and not feed.dirty:
                        return
        except RedisUnavailable as exc:
            logger.warning("jobbox stream: could not read a history (%s); its streams resume",
                           exc)
            self._end_feed(feed)
        finally:
            feed.reading = False

    async def _read_feed(self, feed: OwnerFeed) -> bool:
        """One batch of the feed's history after its cursor, delivered; True if there may be
        more. A history that no longer holds the cursor ends the feed's streams (they resume
        and get a resync)."""
        entries, trimmed = await entries_after(feed.tenant, feed.owner, feed.cursor)
        if trimmed:
            self._end_feed(feed)  # trimmed past our cursor: events were missed
            feed.cursor = text(entries[-1][0]) if entries else feed.cursor
            return False
        if not entries:
            return False
        self.events_read += len(entries)
        STREAM_HISTORY_READS.inc(len(entries))
        feed.cursor = text(entries[-1][0])
        for event in await resolve_entries(entries, tenant=feed.tenant, owner=feed.owner):
            event_id = parse_event_id(event.event_id)
            if event_id is None or not feed.subscribers:
                continue
            chunk = format_event(event.name, await off_loop_if_needed(event.as_json),
                                 event.event_id)
            self._dispatch(feed, Delivery(event_id, event.name, chunk,
                                          job_key(event.kind, event.job_id), event.version))
        return len(entries) == HISTORY_READ_BATCH

    def _dispatch(self, feed: OwnerFeed, event: Delivery) -> None:
        limit = conf.settings().STREAM_QUEUE_MAX_EVENTS
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

    async def drop_idle_feeds(self) -> None:
        """Unsubscribe the people nobody has streamed to for FEED_IDLE_SECONDS (the keeper's
        rounds call this)."""
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


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}


def hub() -> EventHub:
    """This event loop's hub (made on first use)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = EventHub()
    return found
