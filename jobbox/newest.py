"""Never older than the client has seen: the version a client names, and the reads it forces.

A poll answers with an `ETag` naming the job's version (`"v<version>.<digest>"`); a client
sends it back in `If-None-Match` (or `"v<version>"` for a version it learned from a box), and
the box's request can name the versions its client holds (`X-Jobbox-Versions`). When the
answer this process would give is older than what the client names (an outage copy made
before a transition, another process's copy, a Redis that lost its last writes in a
failover), the job is read from the database once (`caches.forced_reads`: at most once per
job per process per OUTAGE_COPY_SECONDS, so a client naming a version that never existed
cannot turn its polls into database reads), Redis is repaired with the usual compare-and-set
and the newer state answered. Within a process, every snapshot read from the database or
committed here is offered to the outage copies (`caches.offer_snapshots`): newer version
wins, so the process never serves an older state after a newer one.
docs/reference/http-api.md has the contract.
"""

import contextlib
import hashlib
import re

from jobbox import caches, registry
from jobbox.box import Box, BoxEntry, snapshot_entry
from jobbox.client import RedisUnavailable
from jobbox.metrics import READS
from jobbox.model import Snapshot
from jobbox.registry import TrackedJob
from jobbox.write import store_snapshot

# The request header of a box read naming the versions its client holds:
# `<kind>:<id>=<version>` pairs, comma-separated.
VERSIONS_HEADER = "X-Jobbox-Versions"
# A poll's entity tag: the version, then a digest of the representation (progress included).
_ETAG_VERSION = re.compile(r'^(?:W/)?"v([0-9]{1,18})(?:\.[^"]*)?"$')
# Longest `X-Jobbox-Versions` read: BOX_MAX_JOBS pairs of usual ids fit well within it.
VERSIONS_HEADER_MAX_CHARS = 8192

JobKey = tuple[str, str]


def poll_etag(version: int, body: bytes) -> str:
    return f'"v{version}.{hashlib.blake2b(body, digest_size=8).hexdigest()}"'


def version_floor(if_none_match: str) -> int | None:
    """The newest version an `If-None-Match` header names (None: none, or none of ours)."""
    found = [int(match.group(1)) for tag in if_none_match.split(",")
             if (match := _ETAG_VERSION.match(tag.strip()))]
    return max(found) if found else None


def etag_matches(if_none_match: str, etag: str) -> bool:
    return etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}


def at_least(job: TrackedJob, job_id: str, snapshot: Snapshot,
             floor: int | None) -> Snapshot | None:
    """`snapshot`, or the database's newer one when the client has seen a version past it
    (None: the job is gone). Raises the database's errors."""
    if floor is None or snapshot.version >= floor:
        return snapshot
    return newest_of(job, {job_id: snapshot.version}).get(job_id, snapshot)


def newest_of(job: TrackedJob, held: dict[str, int]) -> dict[str, Snapshot | None]:
    """For jobs of a kind whose held version (job id -> version) a client has seen past:
    the database's snapshot (None: gone) of each that is newer than the one held, from a
    read forced at most once per job per interval; jobs left out keep what is held. Redis
    is repaired with what was read."""
    found, read_now = caches.forced_reads.read(
        [(job.kind, job_id) for job_id in held], lambda wanted: _load_many(job, wanted))
    if read_now:
        READS.labels(job.kind, "forced").inc(len(read_now))
    newer: dict[str, Snapshot | None] = {}
    for (_, job_id), fresh in found.items():
        if fresh is None or fresh.version > held[job_id]:
            newer[job_id] = fresh
    _repair([fresh for key, fresh in found.items() if key in read_now and fresh is not None])
    return newer


def _load_many(job: TrackedJob, wanted: list[JobKey]) -> dict[JobKey, Snapshot]:
    rows = job.load_many([job_id for _, job_id in wanted])
    snapshots = {(job.kind, job.job_id_of(row)): job.snapshot_of(row) for row in rows}
    caches.offer_snapshots(snapshots.values())
    return snapshots


def _repair(snapshots: list[Snapshot]) -> None:
    """Store what a forced read found: the compare-and-set replaces only an older snapshot
    (one a failover lost the last writes of). Redis away: the outage copies hold it."""
    with contextlib.suppress(RedisUnavailable):
        for snapshot in snapshots:
            store_snapshot(snapshot)


def box_at_least(box: Box, floors: dict[JobKey, int], *, tenant: str, owner: str) -> Box:
    """`box` with each entry the client has seen past replaced by the database's newer
    state (dropped when the job is gone or no longer this person's); one forced read per
    kind for those entries, bounded like a poll's."""
    behind: dict[str, dict[str, BoxEntry]] = {}
    for entry in box.entries:
        floor = floors.get((entry.kind, entry.job_id))
        if floor is not None and entry.version < floor:
            behind.setdefault(entry.kind, {})[entry.job_id] = entry
    if not behind:
        return box
    replaced: dict[JobKey, BoxEntry | None] = {}
    for kind, entries in behind.items():
        job = registry.get(kind)
        held = {job_id: entry.version for job_id, entry in entries.items()}
        for job_id, fresh in newest_of(job, held).items():
            mine = fresh is not None and (fresh.tenant, fresh.owner) == (tenant, owner)
            replaced[(kind, job_id)] = snapshot_entry(job, fresh, None) if mine else None
    entries = [found for entry in box.entries
               if (found := replaced.get((entry.kind, entry.job_id), entry)) is not None]
    entries.sort(key=lambda entry: entry.changed_ms, reverse=True)  # a newer change moves up
    return Box(entries=entries, last_event_id=box.last_event_id)
