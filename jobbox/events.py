"""Job events: what the job box's stream carries, encoded and decoded here.

Events are written by `lua/record_owner_change.lua` (`jobbox.write`), after a snapshot was
stored or a progress report is due, to the owner's bounded history (a Redis stream in the
owner's slot, capped by count and by age); its entry ids are the increasing event ids a
client resumes from. An entry names the job, its state and version and the fields that
changed, never a copy of the snapshot: the job's representation is read from the job's keys
when the event is delivered, and an entry whose job has moved past its version is skipped
(the newer event follows). Entries of the previous format, which copied the snapshot in,
are still read. This module makes an entry's fields (`encode_event`), turns an entry back
into a typed event (`parse_entry`, `EventEntry.resolve`) and an event into what a person
sees: the job's representation, the same render as the single-job endpoints.
"""

from collections.abc import Iterable, Mapping
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
                "version": self.snapshot.version, "job": self.representation()}


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

# A history entry's fields, the same eight on every entry whatever its event: a stream node
# (listpack) then stores their names once, in its master entry, and each entry only its
# values (integers as integers). Tenant and owner are the history's own (its key names
# them); an entry repeats them (a few bytes) so a process of the previous version, in a
# rolling deploy, still delivers it (reading the job's key, as for a snapshot too large).
_NAME, _TENANT, _OWNER, _KIND, _JOB_ID = "e", "t", "o", "k", "i"
_VERSION, _STATUS, _CHANGED = "v", "st", "ch"
# What `_CHANGED` says for a job Redis did not hold before: every field is new.
ALL_FIELDS = "*"
# The previous entry format copied the job's snapshot (and progress) into every entry; such
# entries are still read (a rolling deploy, a history written before an upgrade).
_OLD_SNAPSHOT, _OLD_PROGRESS = "s", "p"


def encode_event(name: str, snapshot: Snapshot, changed: Iterable[str]) -> list[str | int]:
    """An event as a history entry's field/value pairs (`parse_entry` reads them back): what
    a watcher needs to act on it, the job's identity, state, version and the names of the
    fields that changed (`ALL_FIELDS` for a job new to Redis). The job's representation is
    read from the job's keys when the event is delivered, so an entry costs a few dozen
    bytes whatever the job holds."""
    return [_NAME, name, _TENANT, snapshot.tenant, _OWNER, str(snapshot.owner),
            _KIND, snapshot.kind, _JOB_ID, snapshot.job_id,
            _VERSION, snapshot.version, _STATUS, snapshot.status,
            _CHANGED, ",".join(changed)]


def encode_deleted_event(kind: str, job_id: str, *, tenant: str,
                         owner: str) -> list[str | int]:
    """A `deleted` event's field/value pairs: the job's name, no state (there is none). The
    same eight fields as every entry (version 0, no status, nothing changed), so the
    history's nodes keep storing the names once."""
    return [_NAME, "deleted", _TENANT, tenant, _OWNER, owner, _KIND, kind, _JOB_ID, job_id,
            _VERSION, 0, _STATUS, "", _CHANGED, ""]


def encode_history_start(*, tenant: str, owner: str) -> list[str | int]:
    """The entry that starts a person's history when their first stream opens
    (`lua/open_stream.lua`): no event (`parse_entry` knows no `started` and skips it), an id
    for the stream's box to resume from. The same eight fields as every entry."""
    return [_NAME, "started", _TENANT, tenant, _OWNER, owner, _KIND, "", _JOB_ID, "",
            _VERSION, 0, _STATUS, "", _CHANGED, ""]


@dataclass(frozen=True, slots=True)
class EventEntry:
    """A history entry, parsed but not yet decoded into an event. An entry of the current
    format names the job's `version` and reads the job's snapshot and progress from its keys
    (`resolve(raw_snapshot, raw_progress)`); one of the previous format carries them."""

    event_id: str
    event_type: type[JobEvent] | type[JobDeleted]
    tenant: str
    owner: str
    kind: str
    job_id: str
    version: int | None  # None: an entry of the previous format
    status: str
    changed: tuple[str, ...]
    raw_snapshot: bytes  # the previous format's copy (empty when it was too large to copy)
    raw_progress: bytes

    @property
    def needs_snapshot(self) -> bool:
        return not self.raw_snapshot and self.event_type is not JobDeleted

    def resolve(self, raw_snapshot: bytes | None = None,
                progress: Progress | None = None) -> StreamEvent | None:
        """The event, with the snapshot it carries or `raw_snapshot` read from the job's key,
        and `progress` read from the job's progress hash (an entry of the previous format
        carries its own); None if malformed, not this owner's job, or the job has moved past
        this event's version (its newer event follows in the history). A `deleted` event
        needs neither: its job's keys are gone."""
        if self.event_type is JobDeleted:
            return JobDeleted(event_id=self.event_id, tenant=self.tenant, owner=self.owner,
                              kind=self.kind, job_id=self.job_id)
        snapshot = decode_snapshot(raw_snapshot or self.raw_snapshot, kind=self.kind,
                                   job_id=self.job_id)
        if snapshot is None or snapshot.tenant != self.tenant or snapshot.owner != self.owner:
            return None
        if self.version is None:
            progress = Progress.from_json_pairs(self.raw_progress or b"[]")
        elif snapshot.version != self.version:
            return None
        return self.event_type(event_id=self.event_id, tenant=self.tenant, owner=self.owner,
                               snapshot=snapshot, progress=progress)


def parse_entry(event_id: bytes | str, fields: Mapping[bytes, bytes], *, tenant: str,
                owner: str) -> EventEntry | None:
    """An entry of `tenant`/`owner`'s history, of either format; None for anything
    malformed, of an unknown job kind, or naming another person."""
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
    if (text(_TENANT), text(_OWNER)) != (tenant, owner):
        return None  # an entry names its history's person, in either format
    raw_version = text(_VERSION)
    if raw_version and not raw_version.isdigit():
        return None
    version = int(raw_version) if raw_version else None  # None: the previous format
    return EventEntry(
        event_id=event_id.decode() if isinstance(event_id, bytes) else event_id,
        event_type=event_type, tenant=tenant, owner=owner, kind=kind, job_id=job_id,
        version=version, status=text(_STATUS),
        changed=tuple(name for name in text(_CHANGED).split(",") if name),
        raw_snapshot=b"" if version is not None else fields.get(_OLD_SNAPSHOT.encode(), b""),
        raw_progress=fields.get(_OLD_PROGRESS.encode(), b"[]"),
    )


def from_entry(event_id: bytes | str, fields: Mapping[bytes, bytes]) -> StreamEvent | None:
    """An entry that needs nothing read (a `deleted` event, an entry of the previous format
    that copied its snapshot) as an event of the person it names; None for anything else.
    For tools and tests that read a history directly; a stream uses `parse_entry`."""
    tenant, owner = (fields.get(name.encode(), b"").decode() for name in (_TENANT, _OWNER))
    entry = parse_entry(event_id, fields, tenant=tenant, owner=owner)
    return entry.resolve() if entry is not None and not entry.needs_snapshot else None
