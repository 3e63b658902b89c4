"""The read path: Redis first (status and progress in one round trip), the database on a miss.

docs/explanation/architecture.md ("Data flow") and docs/explanation/invariants.md,
invariants 5-7: a hit answers with zero SQL; a miss is filled
once, across threads, processes and hosts (`jobbox.fill`). While Redis is unavailable (the
breaker in `jobbox.client`), answers come from the database through a per-process copy
(`jobbox.caches.OutageCopies`): one query per kind per interval for every job asked for
here recently, so the database load follows the number of processes, not of jobs or pollers.
Garbage in Redis is a miss: it is replaced, never served. The tenant is checked on every
path, and another tenant's job is indistinguishable from a missing one (invariant 5).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from redis.client import Pipeline

from jobbox import caches, conf, keys, newest, registry
from jobbox.caches import Flights
from jobbox.client import RedisUnavailable, get_redis, is_cluster, redis_errors
from jobbox.fill import drop_garbage, fill_once
from jobbox.metrics import READS, SINGLE_FLIGHT_WAITS
from jobbox.model import Progress, Snapshot, decode_snapshot
from jobbox.registry import InvalidJobId, TrackedJob, UnknownJobKind
from jobbox.scripts import run_script

logger = logging.getLogger(__name__)

# Concurrent misses of one job in this process share one claim (and at most one DB read).
_fills: Flights[Snapshot | None] = Flights()


class JobNotFound(LookupError):
    """No such job for this tenant: missing, another tenant's, or an id that names nothing."""


@dataclass(frozen=True, slots=True)
class Cached:
    """What one round trip found in Redis for a job."""

    snapshot: Snapshot | None
    progress: Progress | None
    missing: bool  # a negative entry stands (and no snapshot)


def read_job(kind: str, raw_id: str, *, tenant: str,
             prefetched: Cached | None = None) -> dict[str, Any]:
    """The job's representation for a request acting in `tenant`, or `JobNotFound`.
    `prefetched`: what this request's round trip already read for the job (no second read)."""
    snapshot, progress = read_job_snapshot(kind, raw_id, tenant=tenant, prefetched=prefetched)
    return registry.get(kind).render(snapshot.fields, progress)


def read_job_snapshot(kind: str, raw_id: str, *, tenant: str, prefetched: Cached | None = None,
                      floor: int | None = None) -> tuple[Snapshot, Progress | None]:
    """`read_job`'s snapshot and progress; `floor`: the newest version the client has seen,
    never answered older than (`jobbox.newest`) unless the database has nothing newer."""
    job = registry.get(kind)
    job_id = parse_job_id(job, raw_id)
    snapshot, progress = read_snapshot(job, job_id, prefetched=prefetched)
    newer = newest.at_least(job, job_id, snapshot, floor)
    # The tenant is checked on what is answered: a forced read never shows another's job.
    if newer is None or newer.tenant != tenant:
        raise JobNotFound(job_id)
    return newer, progress


def read_cached(kind: str, job_id: str) -> tuple[Snapshot, Progress | None] | None:
    """Redis only: the stored snapshot and progress, or None on a miss or while Redis is down."""
    job = registry.get(kind)
    try:
        cached = _read_redis(job, job_id)
    except RedisUnavailable:
        return None
    return (cached.snapshot, cached.progress) if cached.snapshot is not None else None


def cached_representation(kind: str, job_id: str) -> dict[str, Any] | None:
    """The representation Redis holds for a job (no tenant check: for trusted callers)."""
    found = read_cached(kind, job_id)
    return registry.get(kind).render(found[0].fields, found[1]) if found else None


def read_snapshot(job: TrackedJob, job_id: str, *,
                  prefetched: Cached | None = None) -> tuple[Snapshot, Progress | None]:
    """The job's snapshot and progress, wherever they can be had; `JobNotFound` if none."""
    try:
        cached = prefetched if prefetched is not None else _read_redis(job, job_id)
    except RedisUnavailable:
        return _from_fallback(job, job_id), None
    if cached.snapshot is not None:
        READS.labels(job.kind, "redis").inc()
        return cached.snapshot, cached.progress
    if cached.missing:
        READS.labels(job.kind, "negative").inc()
        raise JobNotFound(job_id)
    try:
        snapshot, led = _fills.run((job.kind, job_id), lambda: fill_once(job, job_id))
    except RedisUnavailable:
        return _from_fallback(job, job_id), None
    if not led:
        SINGLE_FLIGHT_WAITS.labels(job.kind, "shared").inc()
    if snapshot is None:
        raise JobNotFound(job_id)
    return snapshot, cached.progress


def parse_job_id(job: TrackedJob, raw_id: str) -> str:
    """A job id from a request, checked to be one the kind accepts and a key may hold."""
    try:
        job_id = job.parse_id(raw_id)
        keys.status_key(job.status_namespace, job_id)
    except (InvalidJobId, keys.InvalidKeyPart):
        raise JobNotFound(raw_id) from None
    return job_id


def read_with_principal(principal_key: str, job: TrackedJob,
                        job_id: str) -> tuple[bytes | Exception | None, Cached]:
    """A hot poll's one round trip: the raw value at the caller's principal key (for
    `jobbox.auth.principals.adopt_fetched_principal`) and the job's status, progress and
    negative entry. One script on a single Redis; on a Redis Cluster (the principal and the
    job live in different slots) a pipeline, which sends one batch per node.
    Raises `RedisUnavailable`."""
    with redis_errors():
        client = get_redis()
        if is_cluster():
            pipe = client.pipeline(transaction=False)
            pipe.get(principal_key)
            queue_job_read(pipe, job, job_id)
            raw_principal, *job_replies = pipe.execute(raise_on_error=False)
        else:
            raw_principal, raw_status, raw_progress, raw_missing = run_script(
                "read_job_with_principal", client, [principal_key, *_job_keys(job, job_id)])
            job_replies = [raw_status, _hash_from_flat(raw_progress), raw_missing]
    return raw_principal, cached_from_replies(job, job_id, job_replies)


def _hash_from_flat(reply: Any) -> Any:
    """HGETALL's flat list from a script as the mapping the pipeline's reply would be."""
    if isinstance(reply, Exception):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _read_redis(job: TrackedJob, job_id: str) -> Cached:
    with redis_errors():
        pipe = get_redis().pipeline(transaction=False)
        queue_job_read(pipe, job, job_id)
        # Errors of a single reply (a value of the wrong type) come back as values: garbage.
        replies = pipe.execute(raise_on_error=False)
    return cached_from_replies(job, job_id, replies)


def queue_job_read(pipe: Pipeline, job: TrackedJob, job_id: str) -> None:
    """Queue the job's status, progress and negative entry on `pipe` (three replies, for
    `cached_from_replies`): one slot, and one round trip with whatever else the caller reads."""
    status, progress, missing = _job_keys(job, job_id)
    pipe.get(status)
    pipe.hgetall(progress)
    pipe.get(missing)


def _job_keys(job: TrackedJob, job_id: str) -> tuple[str, str, str]:
    """The keys a poll reads: the job's status, progress and negative entry."""
    return (keys.status_key(job.status_namespace, job_id),
            keys.progress_key(job.progress_namespace, job_id),
            keys.missing_key(job.status_namespace, job_id))


def cached_from_replies(job: TrackedJob, job_id: str, replies: Sequence[Any]) -> Cached:
    """The three replies `queue_job_read` queued (execute with `raise_on_error=False`)."""
    raw_status, raw_progress, raw_missing = replies
    progress = None if isinstance(raw_progress, Exception) else Progress.from_hash(raw_progress)
    if isinstance(raw_status, Exception):
        # Another Redis type at the key: a miss; the fill's compare-and-set replaces it.
        logger.warning("jobbox: %s %s: status key holds another type; replaced", job.kind, job_id)
        return Cached(None, progress, missing=False)
    if raw_status is not None:
        snapshot = decode_snapshot(raw_status, kind=job.kind, job_id=job_id)
        if snapshot is None:
            logger.warning("jobbox: unreadable snapshot for %s %s replaced", job.kind, job_id)
            drop_garbage(job, job_id, raw_status)
        return Cached(snapshot, progress, missing=False)
    return Cached(None, progress, missing=raw_missing == b"1")


def _from_fallback(job: TrackedJob, job_id: str) -> Snapshot:
    """Redis unavailable: this process's copy, refreshed with every job of the kind asked for
    here recently in one query per interval (`caches.OutageCopies`)."""
    snapshot, queried = caches.job_snapshots.get(
        (job.kind, job_id), group=job.kind,
        load_many=lambda wanted: _load_many(job, wanted),
        prefetch=lambda: _load_live(job))
    if queried:
        logger.info("jobbox: Redis unavailable; %s copies refreshed from the database", job.kind)
    READS.labels(job.kind, "db_fallback" if queried else "outage_copy").inc()
    if snapshot is None:
        raise JobNotFound(job_id)
    return snapshot


def _load_many(job: TrackedJob, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Snapshot]:
    """One query for the snapshots of many jobs of a kind, by their outage-copy keys."""
    rows = job.load_many([job_id for _, job_id in wanted])
    return {(job.kind, job.job_id_of(row)): job.snapshot_of(row) for row in rows}


def _load_live(job: TrackedJob) -> dict[tuple[str, str], Snapshot]:
    """The kind's live jobs (what Redis held), read when an outage begins in this process."""
    since = timezone.now() - timedelta(seconds=conf.settings().TERMINAL_TTL_SECONDS)
    rows = job.load_live(since=since, limit=conf.settings().OUTAGE_PREFETCH_MAX_JOBS)
    return {(job.kind, job.job_id_of(row)): job.snapshot_of(row) for row in rows}


def versions_named(header: str) -> dict[tuple[str, str], int]:
    """The (kind, job id) -> version pairs of an `X-Jobbox-Versions` header; malformed pairs,
    unknown kinds and ids a kind refuses are skipped; at most BOX_MAX_JOBS pairs."""
    floors: dict[tuple[str, str], int] = {}
    for pair in header[:newest.VERSIONS_HEADER_MAX_CHARS].split(","):
        named, _, raw_version = pair.strip().rpartition("=")
        kind, _, raw_id = named.partition(":")
        if not (raw_version.isascii() and raw_version.isdigit()) or len(raw_version) > 18:
            continue
        job_id = _parsed_id(kind, raw_id)
        if job_id is not None:
            floors[(kind, job_id)] = int(raw_version)
        if len(floors) >= conf.settings().BOX_MAX_JOBS:
            break
    return floors


def _parsed_id(kind: str, raw_id: str) -> str | None:
    try:
        return parse_job_id(registry.get(kind), raw_id)
    except (UnknownJobKind, JobNotFound):
        return None
