"""The AI job as the seed's code knows it (`AIJob`), and the rules of its transitions.

docs/explanation/states.md: PENDING → PROCESSING → DONE / FAILED / CANCELLED; a run whose worker
died goes back to PENDING (a newer version, so Redis follows) and starts again; a retry of a
FAILED or CANCELLED job is the next attempt. A running job is leased to
its worker (`leased_by`, `leased_until`); only the holder ends the run it started.
Transitions answer a short outcome instead of raising: "ok", "idempotent" (a duplicate
delivery, nothing changed) or "invalid_state". Persistence is the repository's
(academy.ai.repositories).
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from academy.outcomes import Outcome

# The seed stores at most this much of an error message.
ERROR_MESSAGE_MAX_CHARS = 2000


class AIJobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({AIJobStatus.DONE, AIJobStatus.FAILED, AIJobStatus.CANCELLED})
# What a retry may run again.
RETRYABLE = frozenset({AIJobStatus.FAILED, AIJobStatus.CANCELLED})


@dataclass
class AIJob:
    job_id: str
    tenant_id: int
    job_type: str
    status: AIJobStatus = AIJobStatus.PENDING
    payload: dict[str, Any] = field(default_factory=dict)
    created_by_id: int | None = None
    result: Any = None
    error_message: str = ""
    upload_name: str = ""
    report_name: str = ""
    leased_by: str = ""
    leased_until: datetime | None = None
    attempts: int = 0
    # The run a person asked for (1, then +1 per retry); the starts before this run; the
    # earlier runs ({"attempt", "status", "reason"}); the log kept when a run ends.
    attempt: int = 1
    attempts_before_run: int = 0
    previous_attempts: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    # The row version this object was loaded at (0: never saved); the repository refuses to
    # save over a row that changed since.
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def start(self, *, worker_id: str, leased_until: datetime | None = None) -> Outcome:
        if self.status == AIJobStatus.PROCESSING:
            return Outcome.IDEMPOTENT
        if self.status != AIJobStatus.PENDING:
            return Outcome.INVALID_STATE
        self.status = AIJobStatus.PROCESSING
        self.leased_by = worker_id
        self.leased_until = leased_until
        self.attempts += 1
        return Outcome.OK

    def lease_held_by(self, worker_id: str | None) -> bool:
        """Whether `worker_id` (None: anyone, e.g. the failure hook) may end this run."""
        return worker_id is None or (self.status == AIJobStatus.PROCESSING
                                     and self.leased_by == worker_id)

    def requeue(self) -> Outcome:
        """Back to PENDING (a dead worker's run), results cleared."""
        if self.status == AIJobStatus.PENDING:
            return Outcome.IDEMPOTENT
        if self.status in (AIJobStatus.DONE, AIJobStatus.CANCELLED):
            return Outcome.INVALID_STATE
        self.status = AIJobStatus.PENDING
        self.leased_by = ""
        self.leased_until = None
        self.error_message = ""
        self.result = None
        self.report_name = ""
        return Outcome.OK

    def complete(self, *, result: Any, report_name: str = "") -> Outcome:
        if self.status == AIJobStatus.DONE:
            return Outcome.IDEMPOTENT
        if self.status != AIJobStatus.PROCESSING:
            return Outcome.INVALID_STATE
        self.status = AIJobStatus.DONE
        self.result = result
        self.report_name = report_name
        self.error_message = ""
        self.leased_by = ""
        self.leased_until = None
        return Outcome.OK

    def fail(self, *, error_message: str) -> Outcome:
        if self.status == AIJobStatus.FAILED:
            return Outcome.IDEMPOTENT
        if self.status in (AIJobStatus.DONE, AIJobStatus.CANCELLED):
            return Outcome.INVALID_STATE  # a job ends in one terminal state
        self.status = AIJobStatus.FAILED
        self.error_message = str(error_message)[:ERROR_MESSAGE_MAX_CHARS]
        self.leased_by = ""
        self.leased_until = None
        return Outcome.OK

    def cancel(self) -> Outcome:
        """PENDING / PROCESSING → CANCELLED; "terminal" once DONE or FAILED (too late)."""
        if self.status == AIJobStatus.CANCELLED:
            return Outcome.IDEMPOTENT
        if self.terminal:
            return Outcome.TERMINAL
        self.status = AIJobStatus.CANCELLED
        self.error_message = ""
        self.leased_by = ""
        self.leased_until = None
        return Outcome.OK

    def retry(self, *, max_attempt: int) -> Outcome:
        """FAILED / CANCELLED → PENDING as the next attempt, the earlier one's reason kept;
        the starts so far no longer count against the new run's limit."""
        if self.status not in RETRYABLE:
            return Outcome.INVALID_STATE
        if self.attempt >= max_attempt:
            return Outcome.RETRY_LIMIT
        self.previous_attempts = [*self.previous_attempts, {
            "attempt": self.attempt, "status": self.status.value,
            "reason": self.error_message or None}]
        self.attempt += 1
        self.attempts_before_run = self.attempts
        self.status = AIJobStatus.PENDING
        self.error_message = ""
        self.result = None
        self.report_name = ""
        self.leased_by = ""
        self.leased_until = None
        return Outcome.OK
