"""The write path: transitions (version + 1, snapshot after commit) and progress reports.

Invariants 2, 3, 9 and 12 (docs/explanation/invariants.md): the snapshot is taken inside the
transaction (it is exactly the state being committed) but reaches Redis only in `on_commit`,
through a Lua compare-and-set that refuses anything not newer than what Redis holds (the
job's slot); then, in the owner's slot, the owner's job box learns of the job and a `changed`
event joins the owner's history and is announced to the processes streaming to that owner.
Progress goes to Redis only. A deleted row leaves Redis after commit (`forget_on_commit`):
snapshot, progress and box entry. Each script's KEYS and ARGV are built here, next to its call.

Two scripts, two slots: what a Redis Cluster costs. A crash (or a failure that outlasts the
retries) between the job's compare-and-set and the owner's update leaves a stored snapshot
whose box entry and event are missing: a poll of the job is right, the box may miss the job
or show an older score, and open streams do not hear of the change. The reconciler
(`jobbox.reconcile`) compares each recently changed row's box score with what the index
holds and records the owner's part again (index and event); an index that was lost is
rebuilt from the database on its next read.
"""

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from jobbox import caches, conf, keys, model, pending, registry, signals
from jobbox.client import RedisUnavailable, get_redis, is_cluster, redis_errors, with_retries
from jobbox.control import CancelRequested
from jobbox.events import ALL_FIELDS, encode_deleted_event, encode_event
from jobbox.metrics import CACHE_WRITES
from jobbox.model import Snapshot, clamp_percent
from jobbox.registry import TrackedJob, UnknownJobKind
from jobbox.scripts import script

logger = logging.getLogger(__name__)

# A failed write after commit is retried this often before it is left to the reconciler;
# short pauses, since the caller (a worker) waits for them.
STORE_ATTEMPTS = 3
STORE_RETRY_PAUSE_SECONDS = 0.05
# The time left is estimated from the progress rate sampled at most once a second: ffmpeg
# reports twice a second, and a rate over half a second jumps with every keyframe.
ETA_SAMPLE_MIN_MS = 1000
# The newest sample's weight in the smoothed rate: about the last five samples count, so the
# estimate follows a change of step within seconds without jumping at every report.
ETA_SMOOTHING_WEIGHT = 0.3

# How long a deleted job's marker refuses stores of it. A fill stores what it read a database
# read and a Redis call ago (each bounded by its timeout: seconds); an hour leaves room for a
# process paused by a stop or a swap, and costs a few dozen bytes per deleted job.
DELETED_MARKER_TTL_SECONDS = 60 * 60

# What a `progressed` event says changed: the job's progress, not a snapshot field.
PROGRESS_CHANGED = "progress"


class JobIsDeleted(Exception):
    """The job's row was deleted: its snapshot is not stored, nor its box entry or event."""


def save_transition(instance: models.Model, *, update_fields: Iterable[str]) -> None:
    """Save a transition of a row the caller holds locked: version + 1, snapshot on commit."""
    job = registry.for_model(type(instance))
    setattr(instance, job.version_field, getattr(instance, job.version_field) + 1)
    auto_now = [f.name for f in instance._meta.concrete_fields if getattr(f, "auto_now", False)]
    instance.save(update_fields=sorted({*update_fields, job.version_field, *auto_now}))
    snapshot = job.snapshot_of(instance)
    signals.job_transitioned.send(sender=type(instance), job=job, instance=instance,
                                  snapshot=snapshot, update_fields=frozenset(update_fields))
    transaction.on_commit(lambda: store_after_commit(snapshot), using=instance._state.db)


def publish_on_commit(instance: models.Model) -> None:
    """Store the instance's current state in Redis once (and only if) the transaction commits."""
    snapshot = registry.for_model(type(instance)).snapshot_of(instance)
    transaction.on_commit(lambda: store_after_commit(snapshot), using=instance._state.db)


def cache_committed(instance: models.Model) -> bool:
    """Store a committed row's snapshot now (a repair or a warm-up); False if Redis is down."""
    try:
        return store_snapshot(registry.for_model(type(instance)).snapshot_of(instance))
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
    # This process never serves the state before its own transition (an outage copy).
    caches.offer_snapshots([snapshot])
    try:
        # The two parts are retried apart: a retry of the whole would find the snapshot
        # stored by the first try, record no event, and the open streams would miss it.
        stored, changed = with_retries(lambda: store_job_part(snapshot),
                                       attempts=STORE_ATTEMPTS,
                                       pause_seconds=STORE_RETRY_PAUSE_SECONDS)
        with_retries(lambda: record_owner_part(snapshot, stored=stored, changed=changed),
                     attempts=STORE_ATTEMPTS, pause_seconds=STORE_RETRY_PAUSE_SECONDS)
        return stored
    except JobIsDeleted:
        return False
    except RedisUnavailable as exc:
        CACHE_WRITES.labels(snapshot.kind, "failed").inc()
        logger.warning(
            "jobbox: snapshot of %s %s v%s not stored in Redis (%s); left to the reconciler",
            snapshot.kind, snapshot.job_id, snapshot.version, exc,
        )
        return False


def store_snapshot(snapshot: Snapshot) -> bool:
    """Compare-and-set: True if stored, False if Redis already holds this version or a newer one.

    Used by transitions (after commit), read-through fills and repairs (of committed rows).
    Raises `RedisUnavailable`. The job's part, then the owner's (see the module's notes).
    False, and nothing stored, for a job deleted since its row was read.
    """
    try:
        stored, changed = store_job_part(snapshot)
    except JobIsDeleted:
        return False
    record_owner_part(snapshot, stored=stored, changed=changed)
    return stored


def store_job_part(snapshot: Snapshot) -> tuple[bool, tuple[str, ...]]:
    """The compare-and-set in the job's slot: (stored, the names of the fields that differ
    from the snapshot it replaced, `ALL_FIELDS` when there was none). KEYS and ARGV as
    `lua/store_snapshot.lua` documents them. Raises `RedisUnavailable`, and `JobIsDeleted`
    when the job's deleted marker stands."""
    job = registry.get(snapshot.kind)
    queued = not snapshot.terminal and snapshot.status not in job.running_statuses
    with redis_errors():
        stored, changed = script("store_snapshot", get_redis())(
            keys=[keys.status_key(job.status_namespace, snapshot.job_id),
                  keys.progress_key(job.progress_namespace, snapshot.job_id),
                  keys.deleted_key(job.status_namespace, snapshot.job_id)],
            args=[snapshot.version, snapshot.encode(), snapshot.ttl_seconds,
                  "clear" if queued else "keep"],
        )
    if stored < 0:
        CACHE_WRITES.labels(snapshot.kind, "deleted").inc()
        raise JobIsDeleted(f"{snapshot.kind} {snapshot.job_id}")
    CACHE_WRITES.labels(snapshot.kind, "stored" if stored else "stale").inc()
    return bool(stored), tuple(name for name in _text(changed).split(",") if name)


def record_owner_part(snapshot: Snapshot, *, stored: bool,
                      changed: Iterable[str] = (ALL_FIELDS,)) -> str:
    """The owner's box entry always (a stale write's newer snapshot belongs in the box too);
    a `changed` event only when the snapshot was stored. Returns the event id ('' if none).
    Raises `RedisUnavailable`."""
    if snapshot.owner is None:
        return ""
    job = registry.get(snapshot.kind)
    return record_owner_change(
        snapshot, member=box_member(job, snapshot.job_id),
        score=box_score_ms(job, snapshot),
        event=encode_event("changed", snapshot, changed) if stored else None)


def record_owner_change(snapshot: Snapshot, *, member: str, score: int,
                        event: list[str | int] | None) -> str:
    """One call in the owner's slot: the box index (unless `member` is ''), the event in the
    owner's history and its notification. KEYS and ARGV as `lua/record_owner_change.lua`
    documents them. Raises `RedisUnavailable`."""
    assert snapshot.owner is not None
    return record_owner_change_of(snapshot.tenant, snapshot.owner, member=member, score=score,
                                  event=event)


# `record_owner_change_of`'s score that takes the member out of the box (a deleted job).
REMOVE_FROM_BOX = "remove"


def record_owner_change_of(tenant: str, owner: str, *, member: str, score: int | str,
                           event: list[str | int] | None) -> str:
    """`record_owner_change` for an owner named directly (a deleted job has no snapshot)."""
    with redis_errors():
        event_id = script("record_owner_change", get_redis())(
            keys=[keys.box_index_key(tenant, owner), keys.owner_events_key(tenant, owner),
                  keys.owner_channel(tenant, owner), keys.owner_streams_key(tenant, owner)],
            args=[member, score, box_index_ttl_seconds(), conf.settings().BOX_MAX_JOBS,
                  "1" if event else "0", conf.settings().EVENT_HISTORY_MAXLEN,
                  conf.settings().EVENT_HISTORY_TTL_SECONDS, publish_command(),
                  _previous_member(member), *(event or [])],
        )
    return _text(event_id)


def _previous_member(member: str) -> str:
    """The previous layout's reference to `member`'s job, which its change replaces."""
    if not member:
        return ""
    kind, _, job_id = member.partition("\t")
    return previous_box_member(registry.get(kind), job_id)


def publish_command() -> str:
    # SPUBLISH reaches only the shard that owns the channel's slot; PUBLISH on a cluster would
    # be broadcast to every node. A single Redis (6.2 for the embedded default) has PUBLISH,
    # which reaches only the processes subscribed to that owner's channel.
    return "SPUBLISH" if is_cluster() else "PUBLISH"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def on_row_deleted(sender: type[models.Model], instance: models.Model, **_: object) -> None:
    """`post_delete` of any model: a tracked job's row leaves Redis once the delete commits."""
    try:
        job = registry.for_model(sender)
    except UnknownJobKind:
        return
    forget_on_commit(job, instance)


def forget_on_commit(job: TrackedJob, instance: models.Model) -> None:
    job_id = job.job_id_of(instance)
    tenant = str(getattr(instance, job.tenant_field))
    owner = getattr(instance, job.owner_field) if job.owner_field else None
    owner_id = None if owner is None else str(owner)
    # Recorded in the delete's transaction (jobbox.pending): replayed if Redis misses it, so
    # the job cannot come back from a cache that outlived the delete.
    row = pending.record(pending.FORGET, {"kind": job.kind, "job_id": job_id,
                                          "tenant": tenant, "owner": owner_id})
    transaction.on_commit(
        lambda: forget_deleted(job, job_id, tenant=tenant, owner=owner_id, row=row),
        using=instance._state.db)


def forget_deleted(job: TrackedJob, job_id: str, *, tenant: str, owner: str | None,
                   row: int | None = None) -> None:
    """Remove a deleted job's snapshot and progress, leave a negative entry (polls answer 404
    from Redis), and take it out of its owner's box. Never raises for Redis: a failure leaves
    the recorded row to be replayed when Redis answers (jobbox.pending)."""
    try:
        forget_now(job, job_id, tenant=tenant, owner=owner)
    except RedisUnavailable:
        logger.warning("jobbox: deleted %s %s not removed from Redis yet; recorded, it is "
                       "removed when Redis answers", job.kind, job_id)
        return
    pending.applied(row)


def forget_now(job: TrackedJob, job_id: str, *, tenant: str, owner: str | None) -> None:
    """The removal itself. Raises RedisUnavailable."""
    caches.job_snapshots.discard((job.kind, job_id))

    def forget_job_part() -> None:
        with redis_errors():
            script("forget_job", get_redis())(
                keys=[keys.status_key(job.status_namespace, job_id),
                      keys.progress_key(job.progress_namespace, job_id),
                      keys.missing_key(job.status_namespace, job_id),
                      keys.deleted_key(job.status_namespace, job_id)],
                args=[conf.settings().NEGATIVE_TTL_SECONDS, DELETED_MARKER_TTL_SECONDS],
            )

    def forget_owner_part() -> None:
        # Another slot (the owner's): its own script, retried apart like a transition's.
        assert owner is not None
        record_owner_change_of(
            tenant, owner, member=box_member(job, job_id), score=REMOVE_FROM_BOX,
            event=encode_deleted_event(job.kind, job_id, tenant=tenant, owner=owner))

    with_retries(forget_job_part, attempts=STORE_ATTEMPTS, pause_seconds=STORE_RETRY_PAUSE_SECONDS)
    if owner is not None:
        with_retries(forget_owner_part, attempts=STORE_ATTEMPTS,
                     pause_seconds=STORE_RETRY_PAUSE_SECONDS)


def _forget_recorded(arguments: dict[str, Any]) -> None:
    forget_now(registry.get(arguments["kind"]), arguments["job_id"],
               tenant=arguments["tenant"], owner=arguments["owner"])


pending.register_operation(pending.FORGET, _forget_recorded)


def box_member(job: TrackedJob, job_id: str) -> str:
    return keys.box_member(job.kind, job_id)


def previous_box_member(job: TrackedJob, job_id: str) -> str:
    return keys.previous_box_member(job.kind, job_id, status_namespace=job.status_namespace,
                                    progress_namespace=job.progress_namespace)


def box_score_ms(job: TrackedJob, snapshot: Snapshot) -> int:
    """A job's score in its owner's box: ms of the row's last change; -1 for a finished job
    too old for a box (a read-through fill of a job that ended long ago must not bring it
    back)."""
    now = timezone.now()
    changed = job.changed_at(snapshot.fields) or now
    if snapshot.terminal and changed < now - timedelta(seconds=snapshot.ttl_seconds):
        return -1
    return int(min(changed, now).timestamp() * 1000)


def box_index_ttl_seconds() -> int:
    # As long as a running job's snapshot lives: an index idle for longer is rebuilt.
    return int(conf.settings().RUNNING_TTL_SECONDS)


def report_progress(
    kind: str,
    job_id: str,
    *,
    percent: float,
    step_index: int | None = None,
    step_total: int | None = None,
    step_name: str | None = None,
    step_percent: float | None = None,
) -> bool:
    """Record a running job's progress (Redis only) and keep its snapshot alive (the seed's
    "2 h, refreshed by progress"); False when the job already ended (a late report changes
    nothing). Raises `CancelRequested` when someone asked the job to stop
    (`jobbox.request_cancel`): the worker stops there. Raises `RedisUnavailable`: progress is
    best effort, the caller decides whether to care. KEYS and ARGV as
    `lua/report_progress.lua` documents them; a report due as an event is then recorded in
    the owner's slot (`record_owner_change`). The smoothed time left rides in the progress
    hash (`Progress.eta_seconds`)."""
    job = registry.get(kind)
    pairs: list[str | int] = [model.PROGRESS_UPDATED_AT_MS, int(time.time() * 1000)]
    for name, value in (
        (model.PROGRESS_STEP_INDEX, step_index),
        (model.PROGRESS_STEP_TOTAL, step_total),
        (model.PROGRESS_STEP_NAME, step_name),
        (model.PROGRESS_STEP_PERCENT,
         None if step_percent is None else clamp_percent(step_percent)),
    ):
        if value is not None:
            pairs += [name, value]
    # The script compares Redis's TIME in milliseconds.
    interval_ms = round(conf.settings().PROGRESS_EVENT_INTERVAL_SECONDS * 1000)
    with redis_errors():
        reply = script("report_progress", get_redis())(
            keys=[keys.status_key(job.status_namespace, job_id),
                  keys.progress_key(job.progress_namespace, job_id),
                  keys.cancel_key(job.status_namespace, job_id)],
            args=[conf.settings().RUNNING_TTL_SECONDS, clamp_percent(percent),
                  interval_ms, ETA_SAMPLE_MIN_MS, ETA_SMOOTHING_WEIGHT, *pairs],
        )
    if reply[0] == -1:
        raise CancelRequested(kind, job_id)
    if len(reply) == 2:
        _publish_progress(job, job_id, raw_snapshot=_text(reply[1]))
    return bool(reply[0])


def _publish_progress(job: TrackedJob, job_id: str, *, raw_snapshot: str) -> None:
    """The `progressed` event, in the owner's slot (the job's script said it is due)."""
    snapshot = model.decode_snapshot(raw_snapshot, kind=job.kind, job_id=job_id)
    if snapshot is None or snapshot.owner is None:
        return  # garbage at the status key: the next fill replaces it; nothing to announce
    record_owner_change(snapshot, member="", score=-1,
                        event=encode_event("progressed", snapshot, [PROGRESS_CHANGED]))
