"""The registry of AI job types: what `job_type` names, how its upload is checked, how it runs.

The worker (academy.ai.services.run_ai_job) only looks a type up here, so adding a type is a
module in this package and one `register()` call in the app's ready(); no dispatcher grows.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, ClassVar


class UnknownJobType(LookupError):
    pass


class JobFailed(Exception):
    """The job cannot produce a result; `message` is shown to the person who submitted it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class JobOutput:
    result: dict[str, Any]
    # The downloadable report (.xlsx bytes), if the type makes one.
    report: bytes | None = None


# step_index (1-based), step_percent (0 to 100): the runner turns it into named progress.
StepReporter = Callable[[int, float], None]


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: str
    payload: dict[str, Any]
    open_upload: Callable[[], IO[bytes]]
    report_step: StepReporter
    # Called between units of work (rows): raises `jobbox.CancelRequested` once someone
    # asked the job to stop; cheap (a Redis read at most every few hundred ms).
    check_cancel: Callable[[], None] = lambda: None


class JobType(ABC):
    name: ClassVar[str]
    # Named steps, in order: what a person watching the job sees.
    steps: ClassVar[tuple[str, ...]]

    @abstractmethod
    def check_upload(self, content: IO[bytes], *, size_bytes: int) -> dict[str, Any]:
        """Refuse a bad upload (academy.ai.uploads.UploadRefused); the job's payload otherwise."""

    @abstractmethod
    def run(self, context: JobContext) -> JobOutput:
        """Do the work; raise `JobFailed` for a failure the submitter should read."""


_registry: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    _registry[job_type.name] = job_type
    return job_type


def get(name: str) -> JobType:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownJobType(name) from None


def names() -> list[str]:
    return sorted(_registry)
