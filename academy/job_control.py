"""What cancelling and retrying mean for both job kinds of the service, beside jobbox's part.

jobbox holds the cancel flag and the job's log in Redis (jobbox.control); this module keeps
the log lines a worker writes best effort (a log never fails a job), copies the log to the
row when the job ends, and starts a retry's log from the one its earlier runs left.
"""

import logging

from django.db import transaction

from jobbox import RedisUnavailable, append_log, clear_cancel, clear_log, read_log

logger = logging.getLogger(__name__)

# Runs one job may have: a person retrying a job that keeps failing stops here (each run costs
# a worker its whole budget); the earlier runs' reasons are kept, so this bounds them too.
MAX_ATTEMPT = 10


def log_line(kind: str, job_id: str, text: str) -> None:
    """One line in the job's log, best effort: Redis unavailable loses the line, not the job."""
    try:
        append_log(kind, job_id, text)
    except RedisUnavailable:
        logger.info("%s %s: log line not recorded, Redis unavailable", kind, job_id)


def final_log(kind: str, job_id: str, *, stored: list[str]) -> list[str]:
    """The log to keep on the row of a job that ends: Redis's lines, or what the row has if
    Redis cannot say (an outage must not lose a log already kept)."""
    try:
        return read_log(kind, job_id) or stored
    except RedisUnavailable:
        return stored


def previous_attempt(attempt: int, status: str, reason: str) -> dict[str, object]:
    return {"attempt": attempt, "status": status, "reason": reason or None}


def start_retry_on_commit(kind: str, job_id: str, *, earlier_log: list[str],
                          attempt: int) -> None:
    """After the retry commits, and before its task is sent (callbacks run in order): the old
    cancel flag goes, and the new run's log starts with the earlier runs' lines."""

    def restart() -> None:
        try:
            clear_cancel(kind, job_id)
            clear_log(kind, job_id)
            append_log(kind, job_id, *earlier_log, f"attempt {attempt} queued")
        except RedisUnavailable:
            logger.warning("%s %s: retry's Redis state not reset (Redis unavailable)", kind,
                           job_id)

    transaction.on_commit(restart)
