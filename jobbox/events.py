"""Job events: what the job box's stream carries (DESIGN.md, "Data flow": "publish event").

Events are written by the Lua scripts that change Redis (`lua/store_snapshot.lua` when a
snapshot is stored, `lua/report_progress.lua` on progress, throttled per job) to one bounded
Redis stream, in the same atomic step as the change itself: an event exists if and only if
its change does, and the stream's entry ids are the increasing event ids a client resumes
from. This module turns a stream entry into a typed event and an event into what a person
sees: the job's representation, the same render as the single-job endpoints.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobbox import registry
from jobbox.model import Progress, Snapshot, decode_snapshot
from jobbox.registry import UnknownJobKind


@dataclass(frozen=True, slots=True)
class JobEvent:
    event_id: str
    tenant: str
    owner: str
    snapshot: Snapshot
    progress: Progress | None

    name = "job"

    def representation(self) -> dict[str, Any]:
        job = registry.get(self.snapshot.kind)
        return job.render(self.snapshot.fields, self.progress)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.snapshot.kind, "id": self.snapshot.job_id,
                "job": self.representation()}


@dataclass(frozen=True, slots=True)
class JobChanged(JobEvent):
    """A new snapshot of a job was stored: it was created or made a transition."""

    name = "changed"


@dataclass(frozen=True, slots=True)
class ProgressReported(JobEvent):
    """A running job reported progress (at most a few of these per second per job)."""

    name = "progressed"


_EVENT_TYPES: dict[str, type[JobEvent]] = {"changed": JobChanged, "progressed": ProgressReported}


def from_entry(event_id: bytes | str, fields: Mapping[bytes, bytes]) -> JobEvent | None:
    """A stream entry as an event; None for anything malformed or of an unknown job kind."""
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode()

    event_type = _EVENT_TYPES.get(text("e"))
    kind, job_id = text("k"), text("i")
    if event_type is None:
        return None
    try:
        registry.get(kind)
    except UnknownJobKind:
        return None
    snapshot = decode_snapshot(fields.get(b"s", b""), kind=kind, job_id=job_id)
    if snapshot is None or snapshot.owner is None:
        return None
    return event_type(
        event_id=event_id.decode() if isinstance(event_id, bytes) else event_id,
        tenant=snapshot.tenant, owner=snapshot.owner, snapshot=snapshot,
        progress=Progress.from_json_pairs(fields.get(b"p", b"[]")),
    )
