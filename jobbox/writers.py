"""The write path: a transition bumps the row's version and, after commit, stores the snapshot.

DESIGN.md, "Data flow" and invariants 2 and 3: the snapshot is taken inside the transaction
(it is exactly the state being committed) but reaches Redis only in `on_commit`, through a
Lua compare-and-set that refuses anything not newer than what Redis holds.
"""

import logging
import time
from collections.abc import Iterable

from django.db import models, transaction

from jobbox import jobbox_index, keys, localcache, registry, snapshots
from jobbox.client import RedisUnavailable, breaker_bypassed, get_redis, redis_errors
from jobbox.metrics import CACHE_WRITES
from jobbox.scripts import script
from jobbox.snapshots import Snapshot

logger = logging.getLogger(__name__)

# A failed write after commit is retried this often before it is left to the reconciler;
# short pauses, since the caller (a worker) waits for them.
STORE_ATTEMPTS = 3
STORE_RETRY_PAUSE_SECONDS = 0.05


def save_transition(instance: models.Model, *, update_fields: Iterable[str]) -> None:
    """Save a transition of a row the caller holds locked: version + 1, snapshot on commit."""
    job = registry.for_model(type(instance))
    setattr(instance, job.version_field, getattr(instance, job.version_field) + 1)
    auto_now = [f.name for f in instance._meta.concrete_fields if getattr(f, "auto_now", False)]
    instance.save(update_fields=sorted({*update_fields, job.version_field, *auto_now}))
    publish_on_commit(instance)


def publish_on_commit(instance: models.Model) -> None:
    """Store the instance's current state in Redis once (and only if) the transaction commits."""
    job = registry.for_model(type(instance))
    snapshot = snapshots.from_instance(job, instance)
    transaction.on_commit(lambda: store_after_commit(snapshot), using=instance._state.db)


def cache_committed(instance: models.Model) -> bool:
    """Store a committed row's snapshot now (a repair or a warm-up); False if Redis is down."""
    try:
        return store_snapshot(snapshots.from_instance(registry.for_model(type(instance)), instance))
    except RedisUnavailable:
        return False


def store_after_commit(snapshot: Snapshot) -> bool:
    """Store a committed transition's snapshot, retrying briefly; never raises for Redis.

    Polls may have opened the breaker, but a transition's write is rare and worth its own
    try (with the tight socket timeout), so it bypasses the breaker. A write that still
    fails is left to the reconciler (`jobbox.reconcile`), which repairs it within the
    README's staleness bound; meanwhile Redis holds the previous version or nothing, never
    a wrong newer one.
    """
    localcache.job_snapshots.discard((snapshot.kind, snapshot.job_id))
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with breaker_bypassed():
                return store_snapshot(snapshot)
        except RedisUnavailable as exc:
            if attempt == STORE_ATTEMPTS:
                CACHE_WRITES.labels(snapshot.kind, "failed").inc()
                logger.warning(
                    "jobbox: snapshot of %s %s v%s not stored in Redis (%s); left to the "
                    "reconciler", snapshot.kind, snapshot.job_id, snapshot.version, exc,
                )
                return False
            time.sleep(STORE_RETRY_PAUSE_SECONDS * attempt)
    return False


def store_snapshot(snapshot: Snapshot) -> bool:
    """Compare-and-set: True if stored, False if Redis already holds this version or a newer one.

    Used by transitions (after commit) and by read-through fills (of committed rows). In the
    same atomic script the owner's job-box index learns of the job and, when stored, a
    `changed` event goes to the event stream (jobbox.jobbox_index, jobbox.events).
    Raises `RedisUnavailable`.
    """
    job = registry.get(snapshot.kind)
    queued = not snapshot.terminal and snapshot.status not in job.running_statuses
    script_keys = [
        keys.status_key(job.status_namespace, snapshot.job_id),
        keys.progress_key(job.progress_namespace, snapshot.job_id),
    ]
    args: list[str | int] = [snapshot.version, snapshot.encode(), snapshot.ttl_seconds,
                             "clear" if queued else "keep", snapshots.FORMAT]
    if snapshot.owner is not None:
        script_keys += [keys.jobbox_index_key(snapshot.tenant, snapshot.owner),
                        keys.jobbox_events_key()]
        args += jobbox_index.store_arguments(job, snapshot)
    with redis_errors():
        stored = script("store_snapshot", get_redis())(keys=script_keys, args=args)
    CACHE_WRITES.labels(snapshot.kind, "stored" if stored else "stale").inc()
    return bool(stored)
