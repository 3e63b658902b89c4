"""What a job box holds: its entries (one job's representation, summarized past a size)
and the bounded box built from them, with its body and entity tag encoded once. Read by
`jobbox.box` from Redis or the database; the stream opens with the same bounded box."""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from jobbox import conf
from jobbox.model import Progress, Snapshot
from jobbox.registry import TrackedJob

# Longest status a summary repeats: every job's status is a short word; anything else is
# not worth carrying in a summary meant to be small.
SUMMARY_STATUS_MAX_CHARS = 64


@dataclass(frozen=True, slots=True)
class BoxEntry:
    kind: str
    job_id: str
    changed_ms: int
    representation: dict[str, Any]
    truncated: bool = False
    # The snapshot's version (0 when unknown): a stream that starts with this box skips a
    # `changed` event of the job at this version or older (already shown).
    version: int = 0

    # The compact JSON of `as_json()`, encoded once: a box's body is its entries joined.
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoded", _encode(self.as_json()))

    def as_json(self) -> dict[str, Any]:
        # The version: what a client holds, named back on its next read (`jobbox.newest`).
        found = {"kind": self.kind, "id": self.job_id, "version": self.version,
                 "job": self.representation}
        return {**found, "truncated": True} if self.truncated else found

    def within(self, max_bytes: int) -> "BoxEntry":
        """This entry, or its summary when its JSON is larger than `max_bytes`."""
        return self if len(self.encoded) <= max_bytes else self.summary()

    def summary(self) -> "BoxEntry":
        """This entry without its representation, but for the job's status."""
        status = self.representation.get("status")
        if not isinstance(status, str) or len(status) > SUMMARY_STATUS_MAX_CHARS:
            status = None
        return BoxEntry(kind=self.kind, job_id=self.job_id, changed_ms=self.changed_ms,
                        representation={"status": status}, truncated=True,
                        version=self.version)


@dataclass(frozen=True, slots=True)
class Box:
    """A person's jobs, newest change first, and the last event id at the moment of reading.
    Built bounded: `entries` are what fit (summaries for large ones), `omitted` the rest."""

    entries: list[BoxEntry]
    last_event_id: str
    body: bytes = field(init=False)
    omitted: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        entry_max, box_max = conf.settings().BOX_ENTRY_MAX_BYTES, conf.settings().BOX_MAX_BYTES
        kept: list[BoxEntry] = []
        parts: list[bytes] = []
        size = len(b'{"jobs":[],"omitted":}') + len(str(len(self.entries)))
        for entry in self.entries:
            entry = entry.within(entry_max)
            encoded = entry.encoded
            if size + len(encoded) + 1 > box_max:
                break
            kept.append(entry)
            parts.append(encoded)
            size += len(encoded) + 1
        omitted = len(self.entries) - len(kept)
        body = b'{"jobs":[' + b",".join(parts) + b"]"
        body += f',"omitted":{omitted}}}'.encode() if omitted else b"}"
        object.__setattr__(self, "entries", kept)
        object.__setattr__(self, "omitted", omitted)
        object.__setattr__(self, "body", body)

    @property
    def etag(self) -> str:
        # Over the body only: another person's events move the event id, not this box.
        return f'"{hashlib.sha256(self.body).hexdigest()[:32]}"'


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def snapshot_entry(job: TrackedJob, snapshot: Snapshot, progress: Progress | None) -> BoxEntry:
    changed = job.changed_at(snapshot.fields)
    return BoxEntry(kind=job.kind, job_id=snapshot.job_id,
                    changed_ms=int(changed.timestamp() * 1000) if changed else 0,
                    representation=job.render(snapshot.fields, progress),
                    version=snapshot.version)
