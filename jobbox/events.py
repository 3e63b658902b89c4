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


@dataclass(frozen=True, slots=True)
class EventEntry:
    """A history entry, parsed but not yet decoded into an event."""

    event_id: str
    event_type: type[JobEvent]
    tenant: str
    owner: str
    kind: str
    job_id: str
    raw_snapshot: bytes  # empty when the snapshot was too large to copy into the event
    raw_progress: bytes

    @property
    def needs_snapshot(self) -> bool:
        return not self.raw_snapshot

    def resolve(self, raw_snapshot: bytes | None = None) -> JobEvent | None:
        """The event, with the snapshot it carries (or `raw_snapshot`, read from the job's
        key for an entry that needs one); None if malformed or not this owner's job."""
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


def from_entry(event_id: bytes | str, fields: Mapping[bytes, bytes]) -> JobEvent | None:
    """A history entry that carries its snapshot as an event; None for anything else."""
    entry = parse_entry(event_id, fields)
    return entry.resolve() if entry is not None and not entry.needs_snapshot else None
