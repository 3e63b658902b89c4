"""The read path: Redis first (status and progress in one round trip), the database on a miss.

DESIGN.md, "Data flow": a hit answers with zero SQL; a miss reads the row once and stores
what it read (with its version, so it can never overwrite a newer transition); Redis
trouble answers from the database. The tenant is checked on every path, and another
tenant's job is indistinguishable from a missing one (invariant 5).
"""

import contextlib
import logging
from typing import Any

from jobbox import keys, registry, snapshots
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import READS
from jobbox.progress import Progress
from jobbox.registry import InvalidJobId, TrackedJob
from jobbox.snapshots import Snapshot
from jobbox.writers import store_snapshot

logger = logging.getLogger(__name__)


class JobNotFound(LookupError):
    """No such job for this tenant: missing, another tenant's, or an id that names nothing."""


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
        snapshot, progress = _read_redis(job, job_id)
    except RedisUnavailable:
        return None
    return (snapshot, progress) if snapshot is not None else None


def cached_representation(kind: str, job_id: str) -> dict[str, Any] | None:
    """The representation Redis holds for a job (no tenant check: for trusted callers)."""
    found = read_cached(kind, job_id)
    return registry.get(kind).render(found[0].fields, found[1]) if found else None


def read_snapshot(job: TrackedJob, job_id: str) -> tuple[Snapshot, Progress | None]:
    try:
        cached, progress = _read_redis(job, job_id)
    except RedisUnavailable as exc:
        logger.info("jobbox: Redis unavailable (%s); %s %s read from the database",
                    exc, job.kind, job_id)
        READS.labels(job.kind, "db_fallback").inc()
        return _load(job, job_id), None
    if cached is not None:
        READS.labels(job.kind, "redis").inc()
        return cached, progress
    snapshot = _load(job, job_id)
    READS.labels(job.kind, "db_fill").inc()
    _fill(snapshot)
    return snapshot, progress


def _parse_id(job: TrackedJob, raw_id: str) -> str:
    try:
        job_id = job.parse_id(raw_id)
        keys.status_key(job.status_namespace, job_id)  # the id must be usable in a key
    except (InvalidJobId, keys.InvalidKeyPart):
        raise JobNotFound(raw_id) from None
    return job_id


def _read_redis(job: TrackedJob, job_id: str) -> tuple[Snapshot | None, Progress | None]:
    with redis_errors():
        pipe = get_redis().pipeline(transaction=False)
        pipe.get(keys.status_key(job.status_namespace, job_id))
        pipe.hgetall(keys.progress_key(job.progress_namespace, job_id))
        # Errors of a single reply (a value of the wrong type) come back as values: garbage.
        raw_status, raw_progress = pipe.execute(raise_on_error=False)
    if isinstance(raw_progress, Exception):
        raw_progress = {}
    snapshot = None
    if raw_status is not None:
        snapshot = snapshots.decode(raw_status, kind=job.kind, job_id=job_id)
        if snapshot is None:
            logger.warning("jobbox: unreadable snapshot for %s %s replaced", job.kind, job_id)
    return snapshot, Progress.from_hash(raw_progress)


def _load(job: TrackedJob, job_id: str) -> Snapshot:
    instance = job.load(job_id)
    if instance is None:
        READS.labels(job.kind, "not_found").inc()
        raise JobNotFound(job_id)
    return snapshots.from_instance(job, instance)


def _fill(snapshot: Snapshot) -> None:
    # The answer is right without it; the next poll tries again.
    with contextlib.suppress(RedisUnavailable):
        store_snapshot(snapshot)
