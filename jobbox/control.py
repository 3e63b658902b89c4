"""Control over a running job: asking it to stop, and its own log, both in Redis only.

Cancelling is two halves. The project's cancel transition (the versioned write, in one
transaction on the locked row) decides whether the job ends CANCELLED: a cancel racing with
completion ends in exactly one terminal state, whichever locked the row first. After that
transaction commits, `request_cancel_on_commit` sets the job's cancel flag in Redis; its worker
sees it without SQL, at its next `report_progress` (which raises `CancelRequested`) or at its
next `CancelWatch.check()` (a GET at most every `CANCEL_CHECK_INTERVAL_SECONDS`), stops its
work and removes what it wrote. A retry clears the flag (`clear_cancel`) before the job is
queued again.

The log is a bounded list of the job's lines (`LOG_MAX_LINES`, `LOG_MAX_BYTES`, newest kept),
appended atomically by `lua/append_log.lua`; the project copies it to the job's row when the
job ends (`read_log`), so it outlives the Redis keys.
"""

import logging
import time

from django.db import transaction

from jobbox import conf, keys, registry
from jobbox.client import RedisUnavailable, get_redis, redis_errors, with_retries
from jobbox.scripts import script

logger = logging.getLogger(__name__)

# The flag is set after commit, where a request that failed cannot be answered any more: a
# few short tries (the caller is a request waiting for them).
FLAG_ATTEMPTS = 3
FLAG_RETRY_PAUSE_SECONDS = 0.05


class CancelRequested(Exception):
    """Someone asked this job to stop: its worker stops its work and removes its output."""

    def __init__(self, kind: str, job_id: str) -> None:
        super().__init__(f"{kind} {job_id}: cancel requested")
        self.kind, self.job_id = kind, job_id


def _cancel_key(kind: str, job_id: str) -> str:
    return keys.cancel_key(registry.get(kind).status_namespace, job_id)


def request_cancel(kind: str, job_id: str) -> None:
    """Set the job's cancel flag (it lives as long as a running job's snapshot). Raises
    `RedisUnavailable`."""
    with redis_errors():
        get_redis().set(_cancel_key(kind, job_id), "1", ex=conf.settings().RUNNING_TTL_SECONDS)


def request_cancel_on_commit(kind: str, job_id: str, *, using: str | None = None) -> None:
    """Set the job's flag once (and only if) the transaction on `using` commits.

    Best effort: with Redis down the worker learns of the cancel when its lease renewal is
    refused (the row is no longer running), later but surely."""

    def flag() -> None:
        try:
            with_retries(lambda: request_cancel(kind, job_id), attempts=FLAG_ATTEMPTS,
                         pause_seconds=FLAG_RETRY_PAUSE_SECONDS)
        except RedisUnavailable:
            logger.warning("jobbox: cancel flag of %s %s not set; its lease stops it", kind,
                           job_id)

    transaction.on_commit(flag, using=using)


def clear_cancel(kind: str, job_id: str) -> None:
    """Remove the flag (a retry starts clean). Raises `RedisUnavailable`."""
    with redis_errors():
        get_redis().delete(_cancel_key(kind, job_id))


def cancel_requested(kind: str, job_id: str) -> bool:
    """Whether the job was asked to stop: one GET, no SQL. Raises `RedisUnavailable`."""
    with redis_errors():
        return bool(get_redis().exists(_cancel_key(kind, job_id)))


class CancelWatch:
    """A worker's cheap, frequent check between units of work (rows of a sheet): reads the flag
    at most every `CANCEL_CHECK_INTERVAL_SECONDS` and raises `CancelRequested` once it is set.
    Redis unavailable reads as "not asked" (the lease is the backstop)."""

    def __init__(self, kind: str, job_id: str) -> None:
        self.kind, self.job_id = kind, job_id
        self.interval_seconds = float(conf.settings().CANCEL_CHECK_INTERVAL_SECONDS)
        self._checked_at = float("-inf")

    def check(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.interval_seconds:
            return
        self._checked_at = now
        try:
            asked = cancel_requested(self.kind, self.job_id)
        except RedisUnavailable:
            return
        if asked:
            raise CancelRequested(self.kind, self.job_id)


def _log_keys(kind: str, job_id: str) -> list[str]:
    namespace = registry.get(kind).status_namespace
    return [keys.log_key(namespace, job_id), keys.log_bytes_key(namespace, job_id)]


def append_log(kind: str, job_id: str, *lines: str) -> None:
    """Add lines to the job's log (each cut to `LOG_LINE_MAX_BYTES`), the oldest dropped past
    its bounds. Raises `RedisUnavailable`: a log is best effort, the caller decides."""
    if not lines:
        return
    most = int(conf.settings().LOG_LINE_MAX_BYTES)
    cut = [line.encode()[:most].decode(errors="ignore") for line in lines]
    with redis_errors():
        script("append_log", get_redis())(
            keys=_log_keys(kind, job_id),
            args=[conf.settings().LOG_MAX_LINES, conf.settings().LOG_MAX_BYTES,
                  conf.settings().RUNNING_TTL_SECONDS, *cut],
        )


def read_log(kind: str, job_id: str) -> list[str]:
    """The job's log lines in Redis, oldest first (empty if none). Raises `RedisUnavailable`."""
    with redis_errors():
        lines = get_redis().lrange(_log_keys(kind, job_id)[0], 0, -1)
    return [line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            for line in lines]


def clear_log(kind: str, job_id: str) -> None:
    """Forget the job's log in Redis (a retry starts a new one). Raises `RedisUnavailable`."""
    with redis_errors():
        client = get_redis()
        for key in _log_keys(kind, job_id):  # one slot, but a command per key keeps it simple
            client.delete(key)
