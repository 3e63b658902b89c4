"""The job box as Server-Sent Events, resumable: `GET /api/jobbox/stream`.

Served by an ASGI server (uvicorn); polling stays on the sync WSGI path, which is faster for
a poll. Events go where they are watched (docs/explanation/invariants.md, invariant 12):
each person's events are kept in their own bounded history (a Redis stream in their slot,
`jobbox.write`) and announced on their own pub/sub channel (sharded on a cluster). A process
receives the events of the people it serves, not everyone's, and an open stream costs a
queue, never a Redis connection or an OS thread.

The package follows an event's way:

- `notifier`: the pub/sub connections (one per node holding a watched person's slot) and
  their subscribe / unsubscribe rounds;
- `hub`: one per event loop; subscribes the people with open streams, reads a person's
  history once per notification and fans each framed event out to their streams;
- `keeper`: the upkeep of open streams: leases in the per-person count (at most
  STREAMS_PER_PERSON across all processes), principal re-checks every
  STREAM_RECHECK_SECONDS (a revoked token, user or membership ends the stream with a
  `reauthenticate` event), idle people unsubscribed, the heap kept off the collector;
- `history`: reads of a person's history (newest ids, catching up, a resume's replay);
- `source`: one stream from start to end: the opening box, a replay or a `resync`, live
  events, heartbeats; `start_stream()` opens one;
- `model`: what these pass each other (ids, subscriptions, feeds, SSE framing).

The event loop's Redis client and sync threads are `jobbox.aio`'s; the opening box is read
by `jobbox.box.read_box_async`, the same reader as a poll's.
"""

from jobbox.aio import SYNC_THREADS, async_client, in_sync_thread, off_loop_if_needed
from jobbox.stream.hub import EventHub, hub
from jobbox.stream.keeper import GC_FREEZE_MIN_STREAMS, GC_FULL_COLLECT_SECONDS
from jobbox.stream.model import (
    Delivery,
    EventId,
    OwnerFeed,
    PrincipalCheck,
    StreamUnavailable,
    Subscription,
    TooManyStreams,
    format_event,
    parse_event_id,
)
from jobbox.stream.notifier import Notifier, NotifierLost
from jobbox.stream.source import (
    CLIENT_RETRY_SECONDS,
    Stream,
    heartbeat_after_seconds,
    start_stream,
)

__all__ = [
    "CLIENT_RETRY_SECONDS",
    "GC_FREEZE_MIN_STREAMS",
    "GC_FULL_COLLECT_SECONDS",
    "SYNC_THREADS",
    "Delivery",
    "EventHub",
    "EventId",
    "Notifier",
    "NotifierLost",
    "OwnerFeed",
    "PrincipalCheck",
    "Stream",
    "StreamUnavailable",
    "Subscription",
    "TooManyStreams",
    "async_client",
    "format_event",
    "heartbeat_after_seconds",
    "hub",
    "in_sync_thread",
    "off_loop_if_needed",
    "parse_event_id",
    "start_stream",
]
