"""Job events: what the job box's stream carries, encoded and decoded here.

Events are written by `lua/record_owner_change.lua` (`jobbox.write`), after a snapshot was
stored or a progress report is due, to the owner's bounded history (a Redis stream in the
owner's slot, capped exactly); its entry ids are the increasing event ids a client resumes
from. An entry carries the job's snapshot up to EVENT_SNAPSHOT_MAX_BYTES; a larger one is
left out (`EventEntry.needs_snapshot`) and read from the job's key when delivered, so a
history never holds results. This module makes an entry's fields (`encode_event`), turns an
entry back into a typed event (`parse_entry`) and an event into what a person sees: the
job's representation, the same render as the single-job endpoints.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobbox import conf, registry
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

    @property
    def kind(self) -> str:
        return self.snapshot.kind

    @property
    def job_id(self) -> str:
        return self.snapshot.job_id

    @property
    def version(self) -> int:
        return self.snapshot.version

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


@dataclass(frozen=True, slots=True)
class JobDeleted:
    """A job's row was deleted: a box drops it. No snapshot: only its kind and id."""

    event_id: str
    tenant: str
    owner: str
    kind: str
    job_id: str

    name = "deleted"
    version = 0  # no version: nothing of the job is shown any more

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.job_id}


# What a person's stream carries from the history.
StreamEvent = JobEvent | JobDeleted

_EVENT_TYPES: dict[str, type[JobEvent] | type[JobDeleted]] = {
    "changed": JobChanged, "progressed": ProgressReported, "deleted": JobDeleted}

# A history entry's fields: one letter each, since every event of every history carries them.
_NAME, _TENANT, _OWNER, _KIND, _JOB_ID, _SNAPSHOT, _PROGRESS = "e", "t", "o", "k", "i", "s", "p"


def encode_event(name: str, snapshot: Snapshot, progress: str,
                 encoded: str | None = None) -> list[str]:
    """An event as a history entry's field/value pairs (`parse_entry` reads them back). The
    snapshot is copied in only up to EVENT_SNAPSHOT_MAX_BYTES, so a history's size has a
    bound whatever a job holds; a larger one is read from the job's key on delivery.
    `encoded` is the snapshot already encoded, when the caller has it."""
    encoded = snapshot.encode() if encoded is None else encoded
    inline = len(encoded.encode()) <= conf.settings().EVENT_SNAPSHOT_MAX_BYTES
    return [_NAME, name, _TENANT, snapshot.tenant, _OWNER, str(snapshot.owner),
            _KIND, snapshot.kind, _JOB_ID, snapshot.job_id,
            _SNAPSHOT, encoded if inline else "", _PROGRESS, progress]


def encode_deleted_event(kind: str, job_id: str, *, tenant: str, owner: str) -> list[str]:
    """A `deleted` event's field/value pairs: the job's name, no snapshot (there is none)."""
    return [_NAME, "deleted", _TENANT, tenant, _OWNER, owner, _KIND, kind, _JOB_ID, job_id,
            _SNAPSHOT, "", _PROGRESS, "[]"]


@dataclass(frozen=True, slots=True)
class EventEntry:
    """A history entry, parsed but not yet decoded into an event."""

    event_id: str
    event_type: type[JobEvent] | type[JobDeleted]
    tenant: str
    owner: str
    kind: str
    job_id: str
    raw_snapshot: bytes  # empty when the snapshot was too large to copy into the event
    raw_progress: bytes

    @property
    def needs_snapshot(self) -> bool:
        return not self.raw_snapshot and self.event_type is not JobDeleted

    def resolve(self, raw_snapshot: bytes | None = None) -> StreamEvent | None:
        """The event, with the snapshot it carries (or `raw_snapshot`, read from the job's
        key for an entry that needs one); None if malformed or not this owner's job."""
        if self.event_type is JobDeleted:
            return JobDeleted(event_id=self.event_id, tenant=self.tenant, owner=self.owner,
                              kind=self.kind, job_id=self.job_id)
        snapshot = decode_snapshot(raw_snapshot or self.raw_snapshot, kind=self.kind,
                                   job_id=self.job_id)
        if snapshot is None or snapshot.tenant != self.tenant or snapshot.owner != self.owner:
            return None
        return self.event_type(
            event_id=self.event_id, tenant=self.tenant, owner=self.owner, snapshot=snapshot,
            progress=Progress.from_json_pairs(self.raw_progress or b"[]"),
        )


def parse_entry(event_id: bytes | str, fields: Mapping[bytes, bytes]) -> EventEntry | None:
    """A history entry; None for anything malformed or of an unknown job kind."""
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode()

    event_type = _EVENT_TYPES.get(text(_NAME))
    kind, job_id = text(_KIND), text(_JOB_ID)
    if event_type is None:
        return None
    try:
        registry.get(kind)
    except UnknownJobKind:
        return None
    return EventEntry(
        event_id=event_id.decode() if isinstance(event_id, bytes) else event_id,
        event_type=event_type, tenant=text(_TENANT), owner=text(_OWNER), kind=kind,
        job_id=job_id, raw_snapshot=fields.get(_SNAPSHOT.encode(), b""),
        raw_progress=fields.get(_PROGRESS.encode(), b"[]"),
    )


def from_entry(event_id: bytes | str, fields: Mapping[bytes, bytes]) -> StreamEvent | None:
    """A history entry that carries its snapshot as an event; None for anything else."""
    entry = parse_entry(event_id, fields)
    return entry.resolve() if entry is not None and not entry.needs_snapshot else None
