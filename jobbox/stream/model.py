"""What the stream's parts pass each other: event ids, a stream's subscription, a watched
person's feed, a delivery, and one event framed as Server-Sent Events."""

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EventId = tuple[int, int]
# A Redis stream id is two unsigned 64-bit integers; anything larger is out of range.
_EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_EVENT_ID_MAX_PART = 2**64 - 1


def parse_event_id(raw: str | None) -> EventId | None:
    """A stream id, or None when malformed or out of Redis's range (never an exception)."""
    match = _EVENT_ID.match(raw or "")
    if not match:
        return None
    ms, seq = int(match[1]), int(match[2])
    if ms > _EVENT_ID_MAX_PART or seq > _EVENT_ID_MAX_PART:
        return None
    return ms, seq


def id_text(event_id: EventId) -> str:
    return f"{event_id[0]}-{event_id[1]}"


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def job_key(kind: str, job_id: str) -> str:
    """How a delivery and a starting box name the same job."""
    return f"{kind}\t{job_id}"


def format_event(name: str, data: dict[str, Any], event_id: str | None) -> bytes:
    """One Server-Sent Event: its id (what a reconnecting browser resumes from), name, JSON."""
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


class StreamUnavailable(Exception):
    """The event stream's Redis cannot be reached: no stream can start."""


class TooManyStreams(Exception):
    """The person already holds STREAMS_PER_PERSON open streams."""


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
REVOKED = object()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A live event as its streams send it: rendered and framed once per person's feed,
    however many of their streams are open."""

    event_id: EventId
    name: str
    chunk: bytes
    job: str  # job_key(kind, job id)
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
