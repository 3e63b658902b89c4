"""What a transition of the reference service did, as one vocabulary for both job kinds.

A StrEnum: each member equals its string, so Celery task return values, logs and callers
that compare with the string stay readable and keep working.
"""

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"  # the transition happened
    IDEMPOTENT = "idempotent"  # a duplicate delivery: already so, nothing changed
    INVALID_STATE = "invalid_state"  # not allowed from the job's current state
    LEASE_LOST = "lease_lost"  # the worker no longer holds the job (the reaper re-queued it)
    NOT_FOUND = "not_found"
    RESTARTED = "restarted"  # a dead worker's run started again
    TERMINAL = "terminal"  # already finished (DONE / READY / FAILED / CANCELLED)
    REQUEUED = "requeued"  # back in the queue with a newer version
    SKIPPED = "skipped"  # nothing to do (any more)
    LEASED = "leased"  # another worker's run holds a live lease: a duplicate send
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped on request (a cancel), or now so
    RETRY_LIMIT = "retry_limit"  # no further attempt may be asked for
