"""The job box: one person's running and recently finished jobs, from one Redis round trip.

See docs/explanation/invariants.md, invariants 1 and 12, for the rules it keeps. A sorted set
per (tenant, owner), in the owner's slot, holds references to jobs, scored by their last
change. The snapshot writer (`jobbox.write.store_snapshot`, `lua/record_owner_change.lua`)
keeps it current right after it stores a snapshot. On a single Redis, `lua/read_jobbox.lua`
reads the index and every job's snapshot and progress at once (one round trip), dropping
references whose snapshot has expired. On a Redis Cluster the jobs' keys live in other
slots: `lua/read_box_index.lua` reads the index (the owner's node), then one pipeline reads
the snapshots and progress (one round trip per node holding them). A missing
index is rebuilt from the database with one bounded query per registered job kind
(`TrackedJob.recent_for_owner`) and marked complete; writes add to an index whether or not it
is marked, so one that lands during a rebuild is kept. An empty box is still an answer from
Redis (the marker alone).

A box has a size bound whatever its jobs hold (invariant 10): an entry larger than
`BOX_ENTRY_MAX_BYTES` is replaced by a summary (kind, id, status, `"truncated": true`; the
job's own endpoint has the rest), and entries stop at `BOX_MAX_BYTES`, newest first, the
body saying how many it left out (`"omitted"`). The stream's opening box is the same bounded
one.
"""

import json
import threading
from collections.abc import Callable, Generator, Sequence
from datetime import timedelta
from typing import Any

from cachetools import LRUCache
from django.utils import timezone

from jobbox import caches, conf, keys, registry
from jobbox.aio import async_client, in_sync_thread, off_loop_if_needed
from jobbox.box_entries import Box, BoxEntry, snapshot_entry
from jobbox.client import RedisUnavailable, get_redis, is_cluster, on_reset, redis_errors
from jobbox.metrics import JOBBOX_READS
from jobbox.model import Progress, Snapshot, decode_snapshot, is_running_snapshot
from jobbox.registry import TrackedJob, UnknownJobKind
from jobbox.scripts import script
from jobbox.write import box_index_ttl_seconds, box_member, box_score_ms, store_snapshot

# The member that marks an index as rebuilt from the database (scored +inf, so it is never
# trimmed); no job reference can look like it (references hold tabs).
COMPLETE_MARKER = "*complete*"

# Bytes of parsed, rendered and encoded entries kept per process (`_parsed_entries`): a few
# thousand usual entries (under 1 KB each); one entry is at most BOX_ENTRY_MAX_BYTES.
PARSED_ENTRIES_MAX_BYTES = 4 * 1024 * 1024


def read_box(*, tenant: str, owner: str) -> Box:
    """The person's box: one Redis round trip (one per node on a cluster) and no SQL when the
    index exists; on a miss, one bounded query per job kind rebuilds it. Raises
    `RedisUnavailable`."""
    box = parse_reply(_read_reply(tenant, owner), tenant=tenant, owner=owner)
    if box is not None:
        JOBBOX_READS.labels("redis").inc()
        return box
    JOBBOX_READS.labels("rebuilt").inc()
    rebuild(tenant=tenant, owner=owner)
    box = parse_reply(_read_reply(tenant, owner), tenant=tenant, owner=owner)
    if box is None:  # the index vanished again at once: memory pressure; answer, don't loop
        raise RedisUnavailable("job-box index not kept")
    return box


async def read_box_async(*, tenant: str, owner: str) -> Box:
    """`read_box` for an event loop (the stream's opening box), on the loop's async client:
    the same calls and parsing; a rebuild (SQL) on a miss runs in a sync thread. Raises
    redis-py's errors (the caller's `async_redis_errors()` translates them)."""
    box = await off_loop_if_needed(parse_reply, await _read_reply_async(tenant, owner),
                                   tenant=tenant, owner=owner)
    if box is None:
        await in_sync_thread(rebuild)(tenant=tenant, owner=owner)
        box = await off_loop_if_needed(parse_reply, await _read_reply_async(tenant, owner),
                                       tenant=tenant, owner=owner)
    return box or Box(entries=[], last_event_id="")


def finished_before_ms() -> int:
    """The score (ms) before which a finished job has left the box."""
    finished_before = timezone.now() - timedelta(seconds=conf.settings().TERMINAL_TTL_SECONDS)
    return int(finished_before.timestamp() * 1000)


def read_script_arguments(tenant: str, owner: str) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of lua/read_jobbox.lua (a box read, and a hot poll's pipeline)."""
    return ([keys.box_index_key(tenant, owner), keys.owner_events_key(tenant, owner)],
            [COMPLETE_MARKER, conf.settings().BOX_MAX_JOBS, finished_before_ms(),
             *_job_key_parts()])


def _job_key_parts() -> list[str]:
    """read_jobbox.lua's ARGV[4..]: each kind, and its key names' parts around an id."""
    return [part for job in registry.all_jobs() for part in (
        job.kind, *keys.job_key_parts(job.status_namespace, "status"),
        *keys.job_key_parts(job.progress_namespace, "progress"))]


def read_with_principal(principal_key: str,
                        expected: tuple[str, str] | None) -> tuple[Any, Any | None]:
    """A hot box poll's one round trip: the raw value at the principal key and, when the
    caller expects this principal's (tenant, owner) (`owner_hints`), that box's script
    reply (None otherwise). Run by SHA with no SCRIPT EXISTS round trip: a NOSCRIPT reply
    comes back as a value and `box_from_reply` declines it. Independent commands: on a Redis
    Cluster, one batch per node. Raises `RedisUnavailable`."""
    if is_cluster():
        expected = None  # the box's script reads jobs of other slots: not in this batch
    with redis_errors():
        client = get_redis()
        pipe = client.pipeline(transaction=False)
        pipe.get(principal_key)
        if expected is not None:
            script_keys, args = read_script_arguments(*expected)
            pipe.evalsha(script("read_jobbox", client).sha, len(script_keys), *script_keys,
                         *args)
        replies = pipe.execute(raise_on_error=False)
    return replies[0], (replies[1] if expected is not None else None)


def box_from_reply(reply: Any, *, tenant: str, owner: str) -> Box | None:
    """The box from a script reply read by `read_with_principal`; None when that reply
    cannot answer (the index is missing, the script was not loaded, an error): the caller
    then takes `read_box`'s path, which rebuilds, loads or falls back."""
    if reply is None or isinstance(reply, Exception):
        return None
    box = parse_reply(reply, tenant=tenant, owner=owner)
    if box is not None:
        JOBBOX_READS.labels("redis").inc()
    return box


class OwnerHints:
    """The (tenant, owner) each principal key had when this process last resolved it, so the
    next poll can read the box together with the principal. A hint, never trusted: the box
    read with it is used only if the principal read in the same round trip names the very
    same tenant and owner (every entry is then checked against them as always)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._hints: dict[str, tuple[str, str]] = {}

    def get(self, principal_key: str) -> tuple[str, str] | None:
        return self._hints.get(principal_key)

    def remember(self, principal_key: str, tenant_and_owner: tuple[str, str]) -> None:
        if len(self._hints) >= self.max_entries and principal_key not in self._hints:
            # Bounded whatever the number of tokens sent; forgetting costs one extra round
            # trip on each principal's next poll, so no eviction order is worth a lock.
            self._hints.clear()
        self._hints[principal_key] = tenant_and_owner


# Enough for every person one process serves; beyond it the hints start over.
OWNER_HINTS_MAX_ENTRIES = 10_000
owner_hints = OwnerHints(OWNER_HINTS_MAX_ENTRIES)


def index_script_arguments(tenant: str, owner: str) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of lua/read_box_index.lua (the cluster path)."""
    return ([keys.box_index_key(tenant, owner), keys.owner_events_key(tenant, owner)],
            [COMPLETE_MARKER, conf.settings().BOX_MAX_JOBS])


# One Redis call of a box read: given a client, its reply (a sync client) or an awaitable of
# it (an async client). The two clients take the same calls, so one plan serves both.
ReadStep = Callable[[Any], Any]


def _read_steps(tenant: str, owner: str) -> Generator[ReadStep, Any, list[Any]]:
    """A box read as the calls it makes, each sent its reply: a `read_jobbox.lua` reply at
    the end. On a single Redis one script; on a cluster the index's script, one pipeline of
    the jobs' keys, and the removal of members that left the box."""
    if not is_cluster():
        script_keys, args = read_script_arguments(tenant, owner)
        return (yield lambda client: script("read_jobbox", client)(keys=script_keys, args=args))
    script_keys, args = index_script_arguments(tenant, owner)
    index = yield lambda client: script("read_box_index", client)(keys=script_keys, args=args)
    members = index_members(index)
    job_replies = (yield lambda client: _read_jobs(client, members)) if members else []
    reply, gone = assemble_reply(index, members, job_replies, finished_before_ms())
    if gone:
        yield lambda client: client.zrem(script_keys[0], *gone)
    return reply


def _read_jobs(client: Any, members: list[tuple[str, float]]) -> Any:
    pipe = client.pipeline(transaction=False)
    for member, _ in members:
        queue_job_reads(pipe, member)
    return pipe.execute(raise_on_error=False)


def _read_reply(tenant: str, owner: str) -> list[Any]:
    steps = _read_steps(tenant, owner)
    with redis_errors():
        client, step = get_redis(), next(steps)
        try:
            while True:
                step = steps.send(step(client))
        except StopIteration as done:
            return done.value


async def _read_reply_async(tenant: str, owner: str) -> list[Any]:
    steps = _read_steps(tenant, owner)
    client, step = async_client(), next(steps)
    try:
        while True:
            step = steps.send(await step(client))
    except StopIteration as done:
        return done.value


def index_members(index: Sequence[Any]) -> list[tuple[str, float]]:
    """The (member, score) pairs of a `read_box_index.lua` reply."""
    if not index or int(index[0]) == 0:
        return []
    return [(_text(index[at]), float(index[at + 1])) for at in range(2, len(index) - 1, 2)]


def queue_job_reads(pipe: Any, member: str) -> None:
    """Queue the GET of a member's snapshot and HGETALL of its progress on `pipe` (a sync or
    async pipeline; the key names come from the member, built by `jobbox.keys`)."""
    status_key, progress_key = _member_keys(member)
    pipe.get(status_key or "jobbox:garbage-member")
    pipe.hgetall(progress_key or "jobbox:garbage-member")


def _member_keys(member: str) -> tuple[str, str]:
    """A member's status and progress key names: built from its kind and id, or carried
    by a member of the previous layout; empty for garbage."""
    parts = member.split("\t")
    if len(parts) == 4:
        return parts[2], parts[3]
    try:
        job = registry.get(parts[0])
        return (keys.status_key(job.status_namespace, parts[1]),
                keys.progress_key(job.progress_namespace, parts[1]))
    except (UnknownJobKind, keys.InvalidKeyPart, IndexError):
        return "", ""


def assemble_reply(index: Sequence[Any], members: list[tuple[str, float]],
                   job_replies: Sequence[Any], finished_before: int,
                   ) -> tuple[list[Any], list[str]]:
    """What `read_jobbox.lua` would have answered, from the index and the jobs' replies, and
    the members that left the box (expired, finished long ago, or garbage) to remove."""
    if not index or int(index[0]) == 0:
        return [0], []
    reply: list[Any] = [1, index[1]]
    gone: list[str] = []
    for at, (member, score) in enumerate(members):
        snapshot, progress = job_replies[2 * at], job_replies[2 * at + 1]
        if not isinstance(snapshot, bytes) or (score < finished_before
                                               and not is_running_snapshot(snapshot)):
            gone.append(member)
            continue
        pairs = ([] if not isinstance(progress, dict) else
                 [_text(part) for item in progress.items() for part in item])
        reply += [member, snapshot, json.dumps(pairs)]
    return reply, gone


def parse_reply(reply: Sequence[Any], *, tenant: str, owner: str) -> Box | None:
    """A `read_jobbox.lua` reply as a Box; None when the index is missing. Every snapshot is
    checked against the tenant and owner asked for: a box never shows anyone else's job."""
    if not reply or int(reply[0]) == 0:
        return None
    last_event_id = _text(reply[1])
    entries: list[BoxEntry] = []
    for at in range(2, len(reply) - 2, 3):
        entry = _parsed_entries.get(_text(reply[at]), reply[at + 1], reply[at + 2], tenant,
                                    owner)
        if entry is not None:
            entries.append(entry)
    return Box(entries=entries, last_event_id=last_event_id)


class _ParsedEntries:
    """Box entries by the exact bytes Redis returned for them: a box polled every second
    reads the same bytes again for each job whose snapshot and progress did not change, and
    parsing two JSON documents, rendering and encoding each is most of a box poll's CPU. The
    key holds the person asked for, so an entry checked for one person never answers
    another; bounded in bytes, least recently used dropped first."""

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._cache: LRUCache[tuple[Any, ...], tuple[BoxEntry | None, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda value: value[1])

    def get(self, member: str, raw_snapshot: Any, raw_progress: Any, tenant: str,
            owner: str) -> BoxEntry | None:
        """The entry for these bytes, parsed and rendered once (None: not this person's)."""
        # Bytes from the script; the progress is a str when assembled on a cluster.
        if not isinstance(raw_snapshot, bytes) or not isinstance(raw_progress, bytes | str):
            return _entry(member, raw_snapshot, raw_progress, tenant, owner)
        key = (tenant, owner, member, raw_snapshot, raw_progress)
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found[0]
        entry = _entry(member, raw_snapshot, raw_progress, tenant, owner)
        if entry is not None:
            entry = entry.within(conf.settings().BOX_ENTRY_MAX_BYTES)
        size = len(raw_snapshot) + len(raw_progress) + (len(entry.encoded) if entry else 0)
        with self._lock:
            if size <= self._cache.maxsize:
                self._cache[key] = (entry, size)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


_parsed_entries = _ParsedEntries(PARSED_ENTRIES_MAX_BYTES)
# Entries were fitted to the settings of their time (BOX_ENTRY_MAX_BYTES).
on_reset(_parsed_entries.clear)


def _entry(member: str, raw_snapshot: bytes, raw_progress: bytes | str,
           tenant: str, owner: str) -> BoxEntry | None:
    kind, _, rest = member.partition("\t")
    job_id = rest.partition("\t")[0]
    try:
        job = registry.get(kind)
    except UnknownJobKind:
        return None
    snapshot = decode_snapshot(raw_snapshot, kind=kind, job_id=job_id)
    if snapshot is None or snapshot.tenant != tenant or snapshot.owner != owner:
        return None
    return snapshot_entry(job, snapshot, Progress.from_json_pairs(raw_progress))


def box_from_database(*, tenant: str, owner: str) -> Box:
    """The box read from the database alone (Redis is down): the same bounded queries as a
    rebuild, no progress, no event id (a stream cannot resume from it)."""
    entries = [snapshot_entry(job, snapshot, None)
               for job, snapshot in _recent_snapshots(tenant, owner)]
    entries.sort(key=lambda entry: entry.changed_ms, reverse=True)
    return Box(entries=entries[: conf.settings().BOX_MAX_JOBS], last_event_id="")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rebuild(*, tenant: str, owner: str) -> int:
    """Rebuild a person's index from the database: one bounded query per job kind. Snapshots
    are stored through the usual compare-and-set (never over a newer one). Returns the count."""
    found = _recent_snapshots(tenant, owner)
    index_key = keys.box_index_key(tenant, owner)
    with redis_errors():
        # Added to what is there, never replacing it: a transition that committed after the
        # query above has already added itself.
        pipe = get_redis().pipeline(transaction=True)
        pipe.zadd(index_key, {COMPLETE_MARKER: float("inf")})
        for job, snapshot in found:
            score = box_score_ms(job, snapshot)
            pipe.zadd(index_key, {box_member(job, snapshot.job_id): max(score, 0)})
        pipe.expire(index_key, box_index_ttl_seconds())
        pipe.execute()
    for _, snapshot in found:
        # Only fills snapshots Redis lacks: the compare-and-set keeps any newer one.
        store_snapshot(snapshot)
    return len(found)


def _recent_snapshots(tenant: str, owner: str) -> list[tuple[TrackedJob, Snapshot]]:
    """The person's jobs a box can show, from the database: one bounded query per job kind."""
    since = timezone.now() - timedelta(seconds=conf.settings().TERMINAL_TTL_SECONDS)
    limit = conf.settings().BOX_MAX_JOBS
    found = [(job, job.snapshot_of(instance)) for job in registry.all_jobs()
             for instance in job.recent_for_owner(tenant=tenant, owner=owner, since=since,
                                                  limit=limit)]
    caches.offer_snapshots(snapshot for _, snapshot in found)
    return found
