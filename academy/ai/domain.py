"""The AI job as the seed's code knows it (`AIJob`), and the rules of its transitions.

docs/explanation/states.md: PENDING → PROCESSING → DONE / FAILED; a run whose worker died goes back
to PENDING (a newer version, so Redis follows) and starts again. A running job is leased to
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


TERMINAL = frozenset({AIJobStatus.DONE, AIJobStatus.FAILED})


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
        """Back to PENDING (a dead worker's run, or a retry of a failure), results cleared."""
        if self.status == AIJobStatus.PENDING:
            return Outcome.IDEMPOTENT
        if self.status == AIJobStatus.DONE:
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
        if self.status == AIJobStatus.DONE:
            return Outcome.INVALID_STATE  # a job ends in one terminal state
        self.status = AIJobStatus.FAILED
        self.error_message = str(error_message)[:ERROR_MESSAGE_MAX_CHARS]
        self.leased_by = ""
        self.leased_until = None
        return Outcome.OK
