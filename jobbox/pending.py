"""Invalidations that cannot reach Redis are not lost (revocations and deletions).

A revoked token, a deactivated user, a changed membership, a logout or a deleted job must
leave Redis's caches; when Redis is unreachable (down, or hung and later resumed), the write
that would do it fails, and a cached principal or snapshot from before the change would be
served again once Redis answers. So each such invalidation is first recorded in the database,
in the transaction of the change itself (`record`), and the row is deleted once Redis has
applied it (`applied`). Rows left behind are replayed (`replay`):

- by each process whose breaker closes after an outage, before the call that proved Redis
  back is trusted (jobbox.client.redis_errors falls that call back to the database);
- by the periodic reconciler (every 30 s from beat), for processes that saw no outage.

Replaying is idempotent: a revocation writes a fresh mark, a logout a fresh generation, a
deletion removes what may be there.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from jobbox.client import RedisUnavailable

logger = logging.getLogger(__name__)

# Rows one replay reads in one query; a backlog larger than this is replayed over the next
# calls (each outage leaves as many rows as revocations and deletions happened during it).
REPLAY_BATCH_ROWS = 500

REVOKE = "revoke"
FORGET = "forget"
LOGOUT = "logout"


def record(operation: str, arguments: dict[str, Any]) -> int | None:
    """A pending invalidation, in the caller's transaction; its id, or None if the database
    refused (the invalidation is then tried on Redis only, as before)."""
    from jobbox.models import PendingInvalidation

    try:
        return int(PendingInvalidation.objects.create(operation=operation,
                                                      arguments=arguments).pk)
    except DatabaseError:
        logger.warning("jobbox: a %s could not be recorded for replay", operation)
        return None


def applied(row_id: int | None) -> None:
    """Redis has applied it: forget the row."""
    from jobbox.models import PendingInvalidation

    if row_id is None:
        return
    try:
        PendingInvalidation.objects.filter(pk=row_id).delete()
    except DatabaseError:
        logger.info("jobbox: an applied invalidation stays recorded; it is replayed again")


def replay(limit: int = REPLAY_BATCH_ROWS) -> int:
    """Apply recorded invalidations to Redis, oldest first; the number applied. Stops at the
    first Redis failure (the rest wait for the next replay)."""
    from jobbox.models import PendingInvalidation

    done: list[int] = []
    try:
        for row in PendingInvalidation.objects.all()[:limit]:
            if row.operation not in _operations:
                continue  # recorded by a newer version: its own processes replay it
            try:
                _apply(row.operation, row.arguments)
            except RedisUnavailable:
                break
            done.append(row.pk)
        if done:
            PendingInvalidation.objects.filter(pk__in=done).delete()
    except DatabaseError:
        logger.warning("jobbox: recorded invalidations could not be replayed now")
    if done:
        logger.warning("jobbox: replayed %d invalidations Redis had missed", len(done))
    return len(done)


def replay_after_outage(open_seconds: float) -> None:
    """A breaker listener (jobbox.breaker.on_recovered): replay before trusting Redis."""
    replay()


def register_operation(name: str, apply: Callable[[dict[str, Any]], None]) -> None:
    """How a recorded `name` is applied to Redis (raising RedisUnavailable when it is not):
    the modules that record invalidations register their own (jobbox.auth.invalidation,
    jobbox.write), so this module depends on none of them."""
    _operations[name] = apply


_operations: dict[str, Callable[[dict[str, Any]], None]] = {}


def _apply(operation: str, arguments: dict[str, Any]) -> None:
    """Raises RedisUnavailable when Redis did not take it."""
    _operations[operation](arguments)
