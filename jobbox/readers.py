"""The read path: Redis first (status and progress in one round trip), the database on a miss.

DESIGN.md, "Data flow" and invariants 5-7: a hit answers with zero SQL; a miss reads the row
once, across threads, processes and hosts (`jobbox.singleflight`), and stores what it read
(with its version, so it can never overwrite a newer transition); an id that names no job
leaves a short negative entry. While Redis is unavailable (the breaker in `jobbox.client`),
answers come from the database through a per-process cache (`jobbox.localcache`), so the
database load follows the number of jobs, not of pollers. Garbage in Redis is a miss: it is
replaced, never served. The tenant is checked on every path, and another tenant's job is
indistinguishable from a missing one (invariant 5).
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from jobbox import conf, keys, localcache, registry, snapshots
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.localcache import FallbackCache
from jobbox.metrics import READS, SINGLE_FLIGHT_WAITS
from jobbox.progress import Progress
from jobbox.registry import InvalidJobId, TrackedJob
from jobbox.scripts import script
from jobbox.singleflight import Claim, Flights, claim_fill, release_fill
from jobbox.snapshots import Snapshot
from jobbox.writers import store_snapshot

logger = logging.getLogger(__name__)

# Snapshot of a job (None: no such job) read from the database while Redis is unavailable.
_fallback_cache: FallbackCache[Snapshot | None] = localcache.job_snapshots  # type: ignore[assignment]
# Concurrent misses of one job in this process share one claim (and at most one DB read).
_fills: Flights[Snapshot | None] = Flights()


class JobNotFound(LookupError):
    """No such job for this tenant: missing, another tenant's, or an id that names nothing."""


@dataclass(frozen=True, slots=True)
class _Cached:
    snapshot: Snapshot | None
    progress: Progress | None
    missing: bool  # a negative entry stands (and no snapshot)


def read_job(kind: str, raw_id: str, *, tenant: str) -> dict[str, Any]:
    """The job's representation for a request acting in `tenant`, or `JobNotFound`."""
    job = registry.get(kind)
    job_id = _parse_id(job, raw_id)
    snapshot, progress = read_snapshot(job, job_id)
    if snapshot.tenant != tenant:
        raise JobNotFound(job_id)
    return job.render(snapshot.fields, progress)


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


def read_snapshot(job: TrackedJob, job_id: str) -> tuple[Snapshot, Progress | None]:
    try:
        cached = _read_redis(job, job_id)
    except RedisUnavailable:
        return _from_fallback(job, job_id), None
    if cached.snapshot is not None:
        READS.labels(job.kind, "redis").inc()
        return cached.snapshot, cached.progress
    if cached.missing:
        READS.labels(job.kind, "negative").inc()
        raise JobNotFound(job_id)
    try:
        snapshot, led = _fills.run((job.kind, job_id), lambda: _fill_once(job, job_id))
    except RedisUnavailable:
        return _from_fallback(job, job_id), None
    if not led:
        SINGLE_FLIGHT_WAITS.labels(job.kind, "shared").inc()
    if snapshot is None:
        raise JobNotFound(job_id)
    return snapshot, cached.progress


def _parse_id(job: TrackedJob, raw_id: str) -> str:
    try:
        job_id = job.parse_id(raw_id)
        keys.status_key(job.status_namespace, job_id)  # the id must be usable in a key
    except (InvalidJobId, keys.InvalidKeyPart):
        raise JobNotFound(raw_id) from None
    return job_id


def _read_redis(job: TrackedJob, job_id: str) -> _Cached:
    status_key = keys.status_key(job.status_namespace, job_id)
    with redis_errors():
        pipe = get_redis().pipeline(transaction=False)
        pipe.get(status_key)
        pipe.hgetall(keys.progress_key(job.progress_namespace, job_id))
        pipe.get(keys.missing_key(job.status_namespace, job_id))
        # Errors of a single reply (a value of the wrong type) come back as values: garbage.
        raw_status, raw_progress, raw_missing = pipe.execute(raise_on_error=False)
    progress = None if isinstance(raw_progress, Exception) else Progress.from_hash(raw_progress)
    if isinstance(raw_status, Exception):
        # Another Redis type at the key: a miss; the fill's compare-and-set replaces it.
        logger.warning("jobbox: %s %s: status key holds another type; replaced", job.kind, job_id)
        return _Cached(None, progress, missing=False)
    if raw_status is not None:
        snapshot = snapshots.decode(raw_status, kind=job.kind, job_id=job_id)
        if snapshot is None:
            logger.warning("jobbox: unreadable snapshot for %s %s replaced", job.kind, job_id)
            _drop_garbage(status_key, raw_status)
        return _Cached(snapshot, progress, missing=False)
    return _Cached(None, progress, missing=raw_missing == b"1")


def _drop_garbage(status_key: str, raw: bytes) -> None:
    # The compare-and-set would keep garbage that looks like a newer snapshot of our format;
    # removing exactly what was read lets the fill store the row's state.
    with redis_errors():
        script("drop_garbage", get_redis())(keys=[status_key], args=[raw])


def _fill_once(job: TrackedJob, job_id: str) -> Snapshot | None:
    """The fill of one miss, shared across processes: serve a fill, lead one, or wait for one."""
    deadline = time.monotonic() + conf.get("FILL_LEASE_MILLISECONDS") / 1000
    waited = False
    while True:
        claimed = claim_fill(job, job_id)
        if claimed.claim is Claim.HIT and claimed.raw is not None:
            snapshot = snapshots.decode(claimed.raw, kind=job.kind, job_id=job_id)
            if snapshot is not None:
                if waited:
                    SINGLE_FLIGHT_WAITS.labels(job.kind, "filled").inc()
                READS.labels(job.kind, "redis").inc()
                return snapshot
            # Garbage that passes for a snapshot in Lua (another job's, another shape): drop
            # it and claim again, which now grants the lease.
            _drop_garbage(keys.status_key(job.status_namespace, job_id), claimed.raw)
            continue
        if claimed.claim is Claim.MISSING:
            READS.labels(job.kind, "negative").inc()
            return None
        if claimed.claim is Claim.LEASE:
            assert claimed.token is not None
            try:
                return _read_and_store(job, job_id, source="db_fill")
            finally:
                with contextlib.suppress(RedisUnavailable):
                    release_fill(job, job_id, claimed.token)
        waited = True
        if time.monotonic() >= deadline:
            break
        time.sleep(conf.get("FILL_WAIT_POLL_SECONDS"))
    # The lease outlived our wait (a holder stuck on a slow database): one bounded read.
    SINGLE_FLIGHT_WAITS.labels(job.kind, "gave_up").inc()
    logger.warning("jobbox: %s %s: fill lease not released in time; reading the database",
                   job.kind, job_id)
    return _read_and_store(job, job_id, source="db_fill")


def _read_and_store(job: TrackedJob, job_id: str, *, source: str) -> Snapshot | None:
    snapshot = _load(job, job_id)
    READS.labels(job.kind, source if snapshot else "not_found").inc()
    # The answer is right without the store; the next poll tries again.
    with contextlib.suppress(RedisUnavailable):
        if snapshot is not None:
            store_snapshot(snapshot)
        else:
            _mark_missing(job, job_id)
    return snapshot


def _mark_missing(job: TrackedJob, job_id: str) -> None:
    with redis_errors():
        script("mark_missing", get_redis())(
            keys=[keys.status_key(job.status_namespace, job_id),
                  keys.missing_key(job.status_namespace, job_id)],
            args=[snapshots.FORMAT, conf.get("NEGATIVE_TTL_SECONDS")],
        )


def _from_fallback(job: TrackedJob, job_id: str) -> Snapshot:
    """Redis unavailable: this process's recent copy, or one database read shared by all."""
    snapshot, loaded = _fallback_cache.get_or_load((job.kind, job_id), lambda: _load(job, job_id))
    if loaded:
        logger.info("jobbox: Redis unavailable; %s %s read from the database", job.kind, job_id)
    READS.labels(job.kind, "db_fallback" if loaded else "fallback_cache").inc()
    if snapshot is None:
        raise JobNotFound(job_id)
    return snapshot


def _load(job: TrackedJob, job_id: str) -> Snapshot | None:
    instance = job.load(job_id)
    return snapshots.from_instance(job, instance) if instance is not None else None
