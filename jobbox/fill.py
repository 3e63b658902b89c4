"""Filling a missed snapshot from the database: one read per job per miss, across hosts.

docs/explanation/invariants.md, invariant 6 ("concurrent misses for one job share one DB
read"). In a process, `caches.Flights` makes concurrent misses share one fill. Across
processes and hosts, the fill is claimed with a Redis lease in the spirit of memcache
leases: in one atomic step the claim either returns the snapshot (or negative entry) someone
else just stored, or grants the short lease to this reader, or tells it to wait for the
holder's fill. A waiter that outlives the lease (its holder died) reads the database itself,
so the bound is one read per lease period, never one per poller. What a fill read is stored
with its row version, so it can never overwrite a newer transition; an id that names no job
leaves a short negative entry. Each script's KEYS and ARGV are built here, next to its call.
"""

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum

from jobbox import caches, conf, keys
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import READS, SINGLE_FLIGHT_WAITS
from jobbox.model import Snapshot, decode_snapshot
from jobbox.registry import TrackedJob
from jobbox.scripts import script
from jobbox.write import store_snapshot

logger = logging.getLogger(__name__)


class Claim(Enum):
    HIT = "hit"  # a snapshot is stored: serve it
    MISSING = "missing"  # a negative entry is stored: the id names no job
    LEASE = "lease"  # this reader holds the lease: read the database, fill, release
    WAIT = "wait"  # another reader holds it: wait for its fill


@dataclass(frozen=True, slots=True)
class Claimed:
    claim: Claim
    raw: bytes | None = None  # the stored snapshot, for HIT
    token: str | None = None  # the lease token, for LEASE


def fill_once(job: TrackedJob, job_id: str) -> Snapshot | None:
    """The fill of one miss, shared across processes: serve a fill, lead one, or wait for one.
    Raises `RedisUnavailable` when the claim cannot be made."""
    deadline = time.monotonic() + conf.settings().FILL_LEASE_SECONDS
    waited = False
    while True:
        claimed = claim_fill(job, job_id)
        if claimed.claim is Claim.HIT and claimed.raw is not None:
            snapshot = decode_snapshot(claimed.raw, kind=job.kind, job_id=job_id)
            if snapshot is not None:
                if waited:
                    SINGLE_FLIGHT_WAITS.labels(job.kind, "filled").inc()
                READS.labels(job.kind, "redis").inc()
                return snapshot
            # Garbage that passes for a snapshot in Lua (another job's, another shape): drop
            # it and claim again, which now grants the lease.
            drop_garbage(job, job_id, claimed.raw)
            continue
        if claimed.claim is Claim.MISSING:
            READS.labels(job.kind, "negative").inc()
            return None
        if claimed.claim is Claim.LEASE:
            assert claimed.token is not None
            try:
                return read_and_store(job, job_id)
            finally:
                with contextlib.suppress(RedisUnavailable):
                    release_fill(job, job_id, claimed.token)
        waited = True
        if time.monotonic() >= deadline:
            break
        time.sleep(conf.settings().FILL_WAIT_POLL_SECONDS)
    # The lease outlived our wait (a holder stuck on a slow database): one bounded read.
    SINGLE_FLIGHT_WAITS.labels(job.kind, "gave_up").inc()
    logger.warning("jobbox: %s %s: fill lease not released in time; reading the database",
                   job.kind, job_id)
    return read_and_store(job, job_id)


def claim_fill(job: TrackedJob, job_id: str) -> Claimed:
    """One round trip: the stored answer, or the fill lease, or "wait". Raises RedisUnavailable."""
    token = uuid.uuid4().hex
    with redis_errors():
        kind, raw = script("claim_fill", get_redis())(
            keys=[
                keys.status_key(job.status_namespace, job_id),
                keys.missing_key(job.status_namespace, job_id),
                keys.fill_lease_key(job.status_namespace, job_id),
            ],
            # PX: the lease in milliseconds, at least one.
            args=[token, max(1, round(conf.settings().FILL_LEASE_SECONDS * 1000))],
        )
    claim = Claim(kind.decode() if isinstance(kind, bytes) else kind)
    return Claimed(claim, raw=raw or None, token=token if claim is Claim.LEASE else None)


def release_fill(job: TrackedJob, job_id: str, token: str) -> None:
    """Give the lease back (only if still ours). Raises RedisUnavailable."""
    with redis_errors():
        script("release_lease", get_redis())(
            keys=[keys.fill_lease_key(job.status_namespace, job_id)], args=[token]
        )


def read_and_store(job: TrackedJob, job_id: str) -> Snapshot | None:
    """The row's snapshot, stored in Redis (or a negative entry); the answer stands even when
    the store fails: the next poll tries again."""
    snapshot = load_snapshot(job, job_id)
    READS.labels(job.kind, "db_fill" if snapshot else "not_found").inc()
    if snapshot is not None:
        caches.offer_snapshots([snapshot])
    with contextlib.suppress(RedisUnavailable):
        if snapshot is not None:
            store_snapshot(snapshot)
        else:
            _mark_missing(job, job_id)
    return snapshot


def load_snapshot(job: TrackedJob, job_id: str) -> Snapshot | None:
    """The one database read of the read path (a miss or an outage)."""
    instance = job.load(job_id)
    return job.snapshot_of(instance) if instance is not None else None


def _mark_missing(job: TrackedJob, job_id: str) -> None:
    with redis_errors():
        script("mark_missing", get_redis())(
            keys=[keys.status_key(job.status_namespace, job_id),
                  keys.missing_key(job.status_namespace, job_id)],
            args=[conf.settings().NEGATIVE_TTL_SECONDS],
        )


def drop_garbage(job: TrackedJob, job_id: str, raw: bytes) -> None:
    """Delete an unusable status value if it is still exactly what was read. The
    compare-and-set would keep garbage that looks like a newer snapshot of our format;
    removing it lets the fill store the row's state. Raises RedisUnavailable."""
    with redis_errors():
        script("drop_garbage", get_redis())(
            keys=[keys.status_key(job.status_namespace, job_id)], args=[raw])
