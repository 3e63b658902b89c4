"""The reconciler: lost cache writes repaired within a stated bound (docs/explanation/
invariants.md, invariant 8).

A snapshot write after commit that fails is retried (`jobbox.write.store_after_commit`);
what is still stale after that is found here. For every registered TrackedJob, one bounded,
indexed query reads the rows changed within RECONCILE_WINDOW_SECONDS (newest first, at most
RECONCILE_BATCH_LIMIT); one pipelined round trip (one per node on a Redis Cluster) reads the
versions Redis holds and each job's entry in its owner's box; rows Redis holds no snapshot
of, an older or an unreadable one, are stored with the same compare-and-set as every other
write, so a repair can never overwrite a newer transition. A row whose snapshot is current
but whose box entry is missing or older (the owner's part of a write was lost between the
two slots, `jobbox.write`) gets its owner's part recorded again: the box entry and a
`changed` event for the open streams. The cost depends
on how many jobs changed recently, never on how many people poll. Run it periodically (the
reference service's beat runs it every 30 s); the README states the staleness bound. Each
web process also runs it once, over the outage's window, when its breaker closes after an
outage (`reconcile_after_outage`, wired in `jobbox.apps`).
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connections
from django.utils import timezone

from jobbox import caches, conf, keys, pending, registry
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import REPAIRS
from jobbox.model import Snapshot, decode_snapshot
from jobbox.registry import TrackedJob
from jobbox.write import box_member, box_score_ms, record_owner_part, store_snapshot

logger = logging.getLogger(__name__)

# Rows changed this long before the breaker opened are re-checked too: writes can fail for
# a few seconds before a failure opens it (and clocks of hosts differ by a little).
AFTER_OUTAGE_MARGIN_SECONDS = 60.0
# Tries of that repair when its database connection fails (each on a fresh connection).
AFTER_OUTAGE_ATTEMPTS = 2


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def total_repaired(self) -> int:
        return sum(self.repaired.values())


def reconcile_recent(
    *, window_seconds: float | None = None, limit: int | None = None
) -> Report:
    """Store every recently changed job whose snapshot Redis lacks or holds older.

    Invalidations Redis missed (jobbox.pending) are replayed first, so a revocation or a
    deletion made during an outage reaches Redis within one run even in a process whose
    breaker never saw the outage.

    Raises `RedisUnavailable` (nothing can be repaired then; the next run covers the window).
    """
    pending.replay()
    window = conf.settings().RECONCILE_WINDOW_SECONDS if window_seconds is None else window_seconds
    batch = conf.settings().RECONCILE_BATCH_LIMIT if limit is None else limit
    since = timezone.now() - timedelta(seconds=window)
    report = Report()
    for job in registry.all_jobs():
        rows = list(
            job.model._default_manager.filter(**{f"{job.changed_at_field}__gte": since})
            .order_by(f"-{job.changed_at_field}")[:batch]
        )
        if len(rows) == batch:
            logger.warning(
                "jobbox: reconcile: %s rows changed within %s s exceed the batch of %d; older "
                "ones wait for their TTL", job.kind, window, batch,
            )
        _repair(job, [job.snapshot_of(row) for row in rows], report)
    _log_repairs(report)
    return report


def restore_served(job_ids: dict[str, list[str]]) -> Report:
    """Store the jobs of each kind named in `job_ids` from their rows where Redis lacks them
    or holds them older: the jobs this process held while Redis was away, so a Redis that
    came back empty holds them before their next polls (which would each read the database
    to fill them). One query per kind per RECONCILE_BATCH_LIMIT jobs; a deleted job has no
    row, so it is not stored again. Raises `RedisUnavailable`."""
    batch = conf.settings().RECONCILE_BATCH_LIMIT
    report = Report()
    for kind, ids in job_ids.items():
        job = registry.get(kind)
        for start in range(0, len(ids), batch):
            rows = job.load_many(ids[start:start + batch])
            _repair(job, [job.snapshot_of(row) for row in rows], report)
    _log_repairs(report)
    return report


def _repair(job: TrackedJob, fresh: list[Snapshot], report: Report) -> None:
    """Store each snapshot Redis lacks or holds older (compare-and-set), and record again
    the owner's part of a current one whose box entry was lost; counted in `report`."""
    caches.offer_snapshots(fresh)
    held = _held_state(job, fresh)
    stale = [s for s, found in zip(fresh, held, strict=True)
             if found.version is None or found.version < s.version]
    repaired = sum(1 for snapshot in stale if store_snapshot(snapshot))
    for snapshot, found in zip(fresh, held, strict=True):
        if found.version == snapshot.version and found.box_entry_lost(job, snapshot):
            record_owner_part(snapshot, stored=True)
            repaired += 1
    report.checked[job.kind] = report.checked.get(job.kind, 0) + len(fresh)
    report.repaired[job.kind] = report.repaired.get(job.kind, 0) + repaired
    if repaired:
        REPAIRS.labels(job.kind).inc(repaired)


def _log_repairs(report: Report) -> None:
    if report.total_repaired:
        # A repair means a write was lost (or Redis lost data): worth a person's look.
        logger.warning("jobbox: reconcile repaired stale snapshots: %s", report.repaired)


@dataclass(frozen=True, slots=True)
class _Held:
    """What Redis holds for one recently changed row."""

    version: int | None  # of the stored snapshot; None if absent or unreadable
    box_score: float | None  # the job's score in its owner's index; None if not in it
    index_size: int  # entries of the owner's index (0: no index, rebuilt when next read)

    def box_entry_lost(self, job: TrackedJob, snapshot: Snapshot) -> bool:
        """The owner's part of this snapshot's write did not land: the index exists and has
        room (or holds the job) but not at this change's score."""
        expected = box_score_ms(job, snapshot)
        if snapshot.owner is None or expected < 0 or self.index_size == 0:
            return False
        if self.box_score is None:
            # +1: the rebuild marker. A full index may have trimmed the job: not a loss.
            return self.index_size < conf.settings().BOX_MAX_JOBS + 1
        return self.box_score < expected


def _held_state(job: TrackedJob, fresh: list[Snapshot]) -> list[_Held]:
    """What Redis holds for each row, in one pipeline (split per node on a cluster)."""
    if not fresh:
        return []
    with redis_errors():
        pipe = get_redis().pipeline(transaction=False)
        for snapshot in fresh:
            pipe.get(keys.status_key(job.status_namespace, snapshot.job_id))
            if snapshot.owner is not None:
                index = keys.box_index_key(snapshot.tenant, snapshot.owner)
                pipe.zscore(index, box_member(job, snapshot.job_id))
                pipe.zcard(index)
        replies = iter(pipe.execute(raise_on_error=False))
    return [_held_one(job, snapshot, replies) for snapshot in fresh]


def _held_one(job: TrackedJob, snapshot: Snapshot, replies: Any) -> _Held:
    raw = next(replies)
    score, size = (next(replies), next(replies)) if snapshot.owner is not None else (None, 0)
    decoded = (decode_snapshot(raw, kind=job.kind, job_id=snapshot.job_id)
               if isinstance(raw, bytes) else None)
    return _Held(version=decoded.version if decoded else None,
                 box_score=score if isinstance(score, float) else None,
                 index_size=size if isinstance(size, int) else 0)


def reconcile_after_outage(open_seconds: float) -> None:
    """A breaker of this process closed after `open_seconds`: repair, in the background, the
    jobs changed since the outage began and those this process held outage copies of (the
    live jobs it read when the outage began, and every job it served meanwhile), so a
    Redis that came back empty or lagging (a promoted replica that missed the outage's
    writes) shows every job's true state within seconds, and its polls stop reading the
    database at once instead of each filling its job on its next poll. A few bounded
    queries per kind per process and outage; the compare-and-set makes the processes'
    repairs of one job agree."""
    window = open_seconds + AFTER_OUTAGE_MARGIN_SECONDS
    served = caches.job_snapshots.asked_since(window)
    job_ids = {str(kind): [job_id for _, job_id in found] for kind, found in served.items()}
    threading.Thread(target=_reconcile_quietly, args=(window, job_ids), daemon=True,
                     name="jobbox-reconcile-after-outage").start()


def _reconcile_quietly(window_seconds: float, served: dict[str, list[str]]) -> None:
    for attempt in range(1, AFTER_OUTAGE_ATTEMPTS + 1):
        try:
            report = reconcile_recent(window_seconds=window_seconds)
            restored = restore_served(served)
            logger.info("jobbox: after the Redis outage, reconciled %s, restored %s",
                        report.repaired, restored.repaired)
            return
        except RedisUnavailable:
            logger.info("jobbox: Redis gone again before the reconcile after an outage")
            return
        except DatabaseError:
            # A connection that died under it (a restarted or failing-over database, a
            # terminated backend): a fresh one is worth one more try.
            if attempt == AFTER_OUTAGE_ATTEMPTS:
                logger.exception("jobbox: reconcile after a Redis outage failed")
        except Exception:
            logger.exception("jobbox: reconcile after a Redis outage failed")
            return
        finally:
            connections.close_all()  # this thread's own connections
