"""The reconciler: lost cache writes repaired within a stated bound (DESIGN.md, invariant 8).

A snapshot write after commit that fails is retried (`jobbox.write.store_after_commit`);
what is still stale after that is found here. For every registered TrackedJob, one bounded,
indexed query reads the rows changed within RECONCILE_WINDOW_SECONDS (newest first, at most
RECONCILE_BATCH_LIMIT); one pipelined round trip reads the versions Redis holds; rows Redis
holds no snapshot of, an older or an unreadable one, are stored with the same compare-and-set
as every other write, so a repair can never overwrite a newer transition. The cost depends
on how many jobs changed recently, never on how many people poll. Run it periodically (the
reference service's beat runs it every 30 s); the README states the staleness bound. Each
web process also runs it once, over the outage's window, when its breaker closes after an
outage (`reconcile_after_outage`, wired in `jobbox.apps`).
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, connections
from django.utils import timezone

from jobbox import conf, keys, registry
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import REPAIRS
from jobbox.model import Snapshot, decode_snapshot
from jobbox.registry import TrackedJob
from jobbox.write import store_snapshot

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

    Raises `RedisUnavailable` (nothing can be repaired then; the next run covers the window).
    """
    window = conf.get("RECONCILE_WINDOW_SECONDS") if window_seconds is None else window_seconds
    batch = conf.get("RECONCILE_BATCH_LIMIT") if limit is None else limit
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
        fresh = [job.snapshot_of(row) for row in rows]
        stale = [s for s, held in zip(fresh, _held_versions(job, fresh), strict=True)
                 if held is None or held < s.version]
        repaired = sum(1 for snapshot in stale if store_snapshot(snapshot))
        report.checked[job.kind] = len(fresh)
        report.repaired[job.kind] = repaired
        if repaired:
            REPAIRS.labels(job.kind).inc(repaired)
    if report.total_repaired:
        # A repair means a write was lost (or Redis lost data): worth a person's look.
        logger.warning("jobbox: reconcile repaired stale snapshots: %s", report.repaired)
    return report


def _held_versions(job: TrackedJob, fresh: list[Snapshot]) -> list[int | None]:
    """The version of the snapshot Redis holds for each job; None if absent or unreadable."""
    if not fresh:
        return []
    with redis_errors():
        pipe = get_redis().pipeline(transaction=False)
        for snapshot in fresh:
            pipe.get(keys.status_key(job.status_namespace, snapshot.job_id))
        replies = pipe.execute(raise_on_error=False)
    held: list[int | None] = []
    for snapshot, raw in zip(fresh, replies, strict=True):
        decoded = (
            decode_snapshot(raw, kind=job.kind, job_id=snapshot.job_id)
            if isinstance(raw, bytes) else None
        )
        held.append(decoded.version if decoded else None)
    return held




def reconcile_after_outage(open_seconds: float) -> None:
    """A breaker of this process closed after `open_seconds`: repair, in the background, the
    jobs changed since the outage began, so a Redis that came back empty or lagging (a
    promoted replica that missed the outage's writes) shows every job's true state within
    seconds, not one beat interval later. One bounded query per kind per process and outage;
    the compare-and-set makes the processes' repairs of one job agree."""
    window = open_seconds + AFTER_OUTAGE_MARGIN_SECONDS
    threading.Thread(target=_reconcile_quietly, args=(window,), daemon=True,
                     name="jobbox-reconcile-after-outage").start()


def _reconcile_quietly(window_seconds: float) -> None:
    for attempt in range(1, AFTER_OUTAGE_ATTEMPTS + 1):
        try:
            report = reconcile_recent(window_seconds=window_seconds)
            logger.info("jobbox: after the Redis outage, reconciled %s", report.repaired)
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
