"""One stream's source: what it sends, from its first byte to its end.

A stream starts with the whole box (`box`, its id the newest event id at that moment) or,
with `Last-Event-ID`, replays what was missed from the person's history, or says `resync`
(the whole box, with `"recovered": false`) when that history no longer covers the id, or the
id is malformed or out of range. Subscribing happens before the snapshot or replay is read,
and events up to its id are skipped, so nothing falls in between and nothing is sent twice
(Zulip's snapshot-then-replay); a `changed` event of a job the box already showed at that
version is skipped too (the snapshot is stored before its event is recorded). Then live
events from the hub, heartbeats, and an end after STREAM_MAX_SECONDS (the browser resumes).
"""

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from jobbox import conf, keys
from jobbox.aio import async_client, off_loop_if_needed
from jobbox.box import Box, read_box_async
from jobbox.client import RedisUnavailable, async_redis_errors, async_redis_errors_ignored
from jobbox.events import encode_history_start
from jobbox.metrics import STREAM_EVENTS
from jobbox.scripts import async_script
from jobbox.stream.history import replay_after
from jobbox.stream.hub import hub
from jobbox.stream.keeper import STREAM_LEASE_SECONDS
from jobbox.stream.model import (
    REVOKED,
    EventId,
    PrincipalCheck,
    StreamUnavailable,
    Subscription,
    TooManyStreams,
    format_event,
    job_key,
    parse_event_id,
)

logger = logging.getLogger(__name__)

# A box entry changed this recently may still have its event on the way (recorded after the
# snapshot, retried after a failure within seconds): a stream starting with that box skips
# the event if it shows nothing newer. Older ones' late events are the reconciler's repairs.
SHOWN_WINDOW_SECONDS = 60.0
# The browser's EventSource waits this long before reconnecting a dropped stream.
CLIENT_RETRY_SECONDS = 2.0
# Heartbeats vary by this fraction of their interval either way.
HEARTBEAT_JITTER = 0.2


def heartbeat_after_seconds(interval_seconds: float) -> float:
    """The next heartbeat's wait: the interval +-20 %, so streams opened together (a deploy,
    a network blip) do not all beat in the same instant."""
    return interval_seconds * random.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER)


@functools.cache
def _events_counter(name: str) -> Any:
    # The labelled child, looked up once per event name rather than once per delivery.
    return STREAM_EVENTS.labels(name)


def _box_data(box: Box, *, resync: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"jobs": [entry.as_json() for entry in box.entries]}
    if resync:
        # Said plainly (as Centrifugo's `recovered: false`): events since the client's id
        # could not be replayed; this box replaces everything it showed.
        data["recovered"] = False
    return data


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
            yield f"retry: {round(CLIENT_RETRY_SECONDS * 1000)}\n\n".encode()  # SSE counts in ms
            seen = (0, 0)
            async with async_redis_errors():
                async for chunk, position in self._start():
                    seen = position
                    if chunk:
                        yield chunk
            async for chunk in self._live(seen):
                yield chunk
        except RedisUnavailable as exc:
            # Redis failed while starting: end the stream; the browser resumes.
            logger.warning("jobbox stream: ended early (%s)", exc)
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
        heartbeat = conf.settings().STREAM_HEARTBEAT_SECONDS
        ends_at = time.monotonic() + conf.settings().STREAM_MAX_SECONDS
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
            if event is REVOKED:
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
    return {job_key(entry.kind, entry.job_id): entry.version for entry in box.entries
            if entry.version and entry.changed_ms >= since_ms}


async def start_stream(*, tenant: str, owner: str, resume_from: EventId | None,
                       resume_requested: bool = False,
                       check: PrincipalCheck | None = None) -> Stream:
    """A person's event stream: the box (or a replay from `resume_from`; a `resync` when a
    resume was asked for and cannot be served), then live events. Raises `TooManyStreams`
    past the person's cap, `StreamUnavailable` when Redis cannot be reached."""
    subscription = await hub().subscribe(tenant=tenant, owner=owner, check=check)
    try:
        async with async_redis_errors():
            opened = await async_script("open_stream", async_client())(
                keys=[keys.owner_streams_key(tenant, owner),
                      keys.owner_events_key(tenant, owner)],
                args=[subscription.stream_id, int(STREAM_LEASE_SECONDS * 1000),
                      conf.settings().STREAMS_PER_PERSON,
                      conf.settings().EVENT_HISTORY_TTL_SECONDS,
                      *encode_history_start(tenant=tenant, owner=owner)])
    except RedisUnavailable as exc:
        hub().release(subscription)
        raise StreamUnavailable(str(exc)) from exc
    if not opened:
        hub().release(subscription)
        raise TooManyStreams(owner)
    return Stream(subscription, resume_from, resume_requested or resume_from is not None)


async def _end_lease(subscription: Subscription) -> None:
    # On failure the lease runs out by itself within STREAM_LEASE_SECONDS.
    async with async_redis_errors_ignored():
        await async_client().zrem(keys.owner_streams_key(subscription.tenant,
                                                         subscription.owner),
                                  subscription.stream_id)
