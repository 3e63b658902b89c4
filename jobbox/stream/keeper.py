"""The keeper: the upkeep of this process's open streams, every few seconds.

It knows every open stream (and them by principal cache key), renews their leases in the
per-person count (at most STREAMS_PER_PERSON open streams across all processes), re-checks
their principals through the principal cache (a revoked token, user or membership gets a
`reauthenticate` event and the stream ends), asks the hub to unsubscribe people nobody has
watched for a while, and, with many streams open, keeps Python's collector off their objects.
Bulk upkeep (a thousand leases or principals a round trip) runs in the sync threads, on their
connections: the event loop's one async connection and its time stay with the feeds' reads,
which a 2,000-command pipeline held for tens of ms.
"""

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jobbox import conf, keys
from jobbox.aio import in_sync_thread
from jobbox.auth.principals import Principal, decode_principal
from jobbox.client import RedisUnavailable, async_redis_errors, get_redis, is_cluster
from jobbox.stream.model import REVOKED, Subscription
from jobbox.stream.notifier import NotifierLost

logger = logging.getLogger(__name__)

# An open stream's lease in the per-person count: renewed every third of it, so a process
# that died stops counting against its people's cap within this long.
STREAM_LEASE_SECONDS = 60.0
# Principals re-checked (and leases renewed) per round trip: bounds how long one holds the
# shared connection (~1 ms for an MGET of 1,000 here) with 10,000 streams open.
RECHECK_BATCH = 1_000
# Open streams from which the keeper freezes the heap after each round (HeapTender): below
# it a process is left to Python's collector as it is.
GC_FREEZE_MIN_STREAMS = 500
# A full collection (frozen objects included) this often while frozen: frees the cyclic
# garbage of streams that ended (every stream reconnects within STREAM_MAX_SECONDS, 10 min).
GC_FULL_COLLECT_SECONDS = 600.0


class Keeper:
    """The open streams of one event loop's hub and their periodic upkeep."""

    def __init__(self) -> None:
        # Open streams, and by principal cache key: kept as streams come and go, so a round
        # never rebuilds them (10,000 streams: tens of ms of the loop at once).
        self._open: set[Subscription] = set()
        self._checks: dict[str, set[Subscription]] = {}
        self._principals_seen: dict[str, bytes] = {}
        self.heap = HeapTender()

    @property
    def open_streams(self) -> int:
        return len(self._open)

    def add(self, subscription: Subscription) -> None:
        self._open.add(subscription)
        if subscription.check is not None:
            self._checks.setdefault(subscription.check.key, set()).add(subscription)

    def discard(self, subscription: Subscription) -> None:
        self._open.discard(subscription)
        if subscription.check is None:
            return
        sharing = self._checks.get(subscription.check.key)
        if sharing is not None:
            sharing.discard(subscription)
            if not sharing:
                del self._checks[subscription.check.key]

    async def run(self, drop_idle_feeds: Callable[[], Awaitable[None]]) -> None:
        """Every few seconds: unsubscribe idle people, renew stream leases, re-check every
        open stream's principal. A failure waits for the next round."""
        interval = min(conf.settings().STREAM_RECHECK_SECONDS, STREAM_LEASE_SECONDS / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                async with async_redis_errors():
                    await drop_idle_feeds()
                    await self._renew_leases()
                    await self._recheck_principals()
                self.heap.tend(self.open_streams)
            except (RedisUnavailable, NotifierLost) as exc:
                logger.info("jobbox stream: keeper round failed (%s)", exc)

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
                subscription.queue.put_nowait(REVOKED)


class HeapTender:
    """With many streams open, keeps Python's cyclic collector off their objects.

    An open stream is ~140 long-lived objects (its request, connection, tasks, queue); with
    10,000 open, each full collection walked 1.4 million objects and held the event loop
    ~1.3 s, every ~15 s (measured: bench.streams, gc callbacks), which was the whole p99 of
    event delivery. gc.freeze() moves everything alive now out of the collector's
    generations (refcounting still frees it), so the collections that follow walk only what
    is newer. Cyclic garbage among frozen objects waits for the next full collection, made
    every GC_FULL_COLLECT_SECONDS."""

    def __init__(self) -> None:
        self._full_collect_at = time.monotonic()
        # A flag, not gc.get_freeze_count(): that walks every frozen object (~0.1 s here).
        self._froze = False

    def tend(self, open_streams: int) -> None:
        now = time.monotonic()
        if self._froze and now - self._full_collect_at >= GC_FULL_COLLECT_SECONDS:
            gc.unfreeze()
            gc.collect()
            self._full_collect_at = now
            self._froze = False
        if open_streams >= GC_FREEZE_MIN_STREAMS:
            gc.freeze()
            self._froze = True


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
    # Compared as principals, not as JSON: the cache's short fields decode to the same one.
    principal = decode_principal(raw)
    return principal is not None and principal == Principal(**expected)
