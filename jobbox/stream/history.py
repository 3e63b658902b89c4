"""Reading a person's event history (a Redis stream in their slot, written by
`jobbox.write`): the newest ids when people join, the entries after a feed's cursor, the
replay a resuming stream asks for, and entries turned into events of that person."""

from typing import Any

from jobbox import keys, registry
from jobbox.aio import async_client
from jobbox.events import EventEntry, StreamEvent, parse_entry
from jobbox.model import Progress
from jobbox.stream.model import EventId, id_text, parse_event_id, text

# History entries read per round trip when catching up one person's history.
HISTORY_READ_BATCH = 500
# A resume that would replay more than this many events is answered with a resync instead:
# past this, the whole box is shorter than the events that led to it.
REPLAY_MAX_EVENTS = 5_000


async def newest_ids(people: list[tuple[str, str]]) -> list[str]:
    """Each person's newest history id ("0-0" for an empty history): one pipeline."""
    pipe = async_client().pipeline(transaction=False)
    for tenant, owner in people:
        pipe.xrevrange(keys.owner_events_key(tenant, owner), count=1)
    return [text(last[0][0]) if last else "0-0" for last in await pipe.execute()]


async def entries_after(tenant: str, owner: str, cursor: str) -> tuple[list[Any], bool]:
    """Up to HISTORY_READ_BATCH entries after `cursor`, and whether the history was trimmed
    past it (events after the cursor are missing: its streams must resync)."""
    history = keys.owner_events_key(tenant, owner)
    pipe = async_client().pipeline(transaction=False)
    pipe.xrange(history, count=1)
    pipe.xrange(history, min=f"({cursor}", count=HISTORY_READ_BATCH)
    oldest, entries = await pipe.execute()
    position = parse_event_id(cursor) or (0, 0)
    trimmed = bool(oldest) and position != (0, 0) and (
        parse_event_id(text(oldest[0][0])) or (0, 0)) > position
    return entries, trimmed


async def replay_after(event_id: EventId, *, tenant: str,
                       owner: str) -> tuple[list[StreamEvent], EventId] | None:
    """This person's events after `event_id` and the newest id looked at, or None when the
    history no longer covers it (trimmed past it, expired, or an id beyond the newest: from
    before a Redis reset); the caller resyncs."""
    history = keys.owner_events_key(tenant, owner)
    pipe = async_client().pipeline(transaction=False)
    pipe.xrange(history, count=1)
    pipe.xrevrange(history, count=1)
    pipe.xrange(history, min=f"({id_text(event_id)}", count=REPLAY_MAX_EVENTS + 1)
    first, last, entries = await pipe.execute(raise_on_error=False)
    if isinstance(entries, Exception) or not first or not last:
        return None  # the id is the largest there is: nothing can follow it
    oldest = parse_event_id(text(first[0][0]))
    newest = parse_event_id(text(last[0][0]))
    if oldest is None or newest is None or event_id < oldest or event_id > newest:
        return None
    if len(entries) > REPLAY_MAX_EVENTS:
        return None
    return await resolve_entries(entries, tenant=tenant, owner=owner), newest


async def resolve_entries(entries: list[Any], *, tenant: str,
                          owner: str) -> list[StreamEvent]:
    """History entries as events of this person. An entry names its job and version; the
    job's snapshot and progress are read from its keys (one pipeline, once per job however
    many of its entries the batch holds), and an entry whose job has moved past its version
    is skipped: its newer event is later in the history. Entries of the previous format
    carry their snapshot (and progress) unless it was too large to copy. A `deleted` entry
    reads nothing: its job has no keys any more."""
    parsed = _latest_of_each(
        [entry for entry_id, fields in entries
         if (entry := parse_entry(entry_id, fields, tenant=tenant, owner=owner)) is not None])
    jobs = list(dict.fromkeys((entry.kind, entry.job_id) for entry in parsed
                              if entry.needs_snapshot))
    states: dict[tuple[str, str], tuple[bytes | None, Progress | None]] = {}
    if jobs:
        pipe = async_client().pipeline(transaction=False)
        for kind, job_id in jobs:
            job = registry.get(kind)
            pipe.get(keys.status_key(job.status_namespace, job_id))
            pipe.hgetall(keys.progress_key(job.progress_namespace, job_id))
        replies = await pipe.execute(raise_on_error=False)
        for at, found in enumerate(jobs):
            raw, progress = replies[2 * at], replies[2 * at + 1]
            states[found] = (raw if isinstance(raw, bytes) else None,
                             Progress.from_hash(progress) if isinstance(progress, dict) else None)
    events: list[StreamEvent] = []
    for entry in parsed:
        event = _resolve(entry, states.get((entry.kind, entry.job_id)))
        if event is not None:
            events.append(event)
    return events


def _latest_of_each(parsed: list[EventEntry]) -> list[EventEntry]:
    """Of entries naming the same job, version and event, the last: they would all show the
    same state (read when delivered), so the earlier ones would only repeat it."""
    last = {(entry.kind, entry.job_id, entry.version, entry.event_type): at
            for at, entry in enumerate(parsed) if entry.version is not None}
    return [entry for at, entry in enumerate(parsed) if entry.version is None
            or last[(entry.kind, entry.job_id, entry.version, entry.event_type)] == at]


def _resolve(entry: EventEntry,
             state: tuple[bytes | None, Progress | None] | None) -> StreamEvent | None:
    if not entry.needs_snapshot:
        return entry.resolve()
    if state is None or state[0] is None:
        return None  # the job's snapshot expired meanwhile: nothing to show
    return entry.resolve(*state)
