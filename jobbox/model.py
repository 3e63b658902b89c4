"""What Redis holds for a job, and its encoding: the status snapshot and the progress.

A snapshot is the job's durable fields as the database has them at one row version, plus
the tenant (checked on every cache hit) and the owner (for the job box). The database path
builds the very same snapshot (`TrackedJob.snapshot_of`), so both paths render byte-for-byte
the same JSON (docs/explanation/invariants.md, invariant 4). Progress lives in Redis only
(invariant 9).

A leaf: this module imports nothing of jobbox but its settings.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobbox import conf

# Bumped when the stored shape changes; a snapshot of an unknown format reads as a miss.
# This format is positional, `[2, kind, id, tenant, owner, version, status, terminal,
# fields]`: every job's snapshot would repeat the names of the envelope's eight fields. The
# previous format, an object with those names and `"f": 1`, is still read (a rolling deploy,
# a snapshot stored before an upgrade), by `decode_snapshot` and by the scripts
# (`lua/snapshot_format.lua`).
FORMAT = 2
PREVIOUS_FORMAT = 1
_ENVELOPE_LENGTH = 9


@dataclass(frozen=True, slots=True)
class Snapshot:
    kind: str
    job_id: str
    tenant: str
    owner: str | None
    version: int
    status: str
    terminal: bool
    fields: dict[str, Any]

    def encode(self) -> str:
        return json.dumps(
            [FORMAT, self.kind, self.job_id, self.tenant, self.owner, self.version,
             self.status, self.terminal, self.fields],
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @property
    def ttl_seconds(self) -> int:
        found = conf.settings()
        return found.TERMINAL_TTL_SECONDS if self.terminal else found.RUNNING_TTL_SECONDS


def decode_snapshot(raw: bytes | str, *, kind: str, job_id: str) -> Snapshot | None:
    """Parse a stored snapshot of either format; garbage, an unknown format or another job's
    reads as a miss."""
    try:
        snapshot = _snapshot_of(json.loads(raw))
    except (ValueError, TypeError, KeyError):
        return None
    well_formed = (
        snapshot is not None
        and snapshot.kind == kind
        and snapshot.job_id == job_id
        and isinstance(snapshot.tenant, str)
        and type(snapshot.version) is int
        and isinstance(snapshot.fields, dict)
        and isinstance(snapshot.terminal, bool)
    )
    return snapshot if well_formed else None


def _snapshot_of(doc: Any) -> Snapshot | None:
    if isinstance(doc, list) and len(doc) == _ENVELOPE_LENGTH and doc[0] == FORMAT:
        return Snapshot(*doc[1:])
    if isinstance(doc, dict) and doc.get("f") == PREVIOUS_FORMAT:
        return Snapshot(kind=doc["kind"], job_id=doc["id"], tenant=doc["tenant"],
                        owner=doc["owner"], version=doc["version"], status=doc["status"],
                        terminal=doc["terminal"], fields=doc["fields"])
    return None


def is_running_snapshot(raw: bytes | str) -> bool:
    """Whether a stored snapshot (either format) says its job has not finished."""
    try:
        snapshot = _snapshot_of(json.loads(raw))
    except (ValueError, TypeError, KeyError):
        return False
    return snapshot is not None and snapshot.terminal is False


# The progress hash's fields: short names, since every running job's hash repeats them, and
# integers, which a listpack (the small hash's encoding) stores in a few bytes. Every value
# stays under hash-max-listpack-value (64 bytes) except a step name longer than that, which
# turns that one job's hash into a (larger) hashtable. `lua/report_progress.lua` writes them.
PROGRESS_PERCENT = "p"
PROGRESS_STEP_INDEX = "si"
PROGRESS_STEP_TOTAL = "sn"
PROGRESS_STEP_NAME = "nm"
PROGRESS_STEP_PERCENT = "sp"
PROGRESS_UPDATED_AT_MS = "u"
PROGRESS_ETA_SECONDS = "e"
# The names the previous layout wrote (full words, updated_at in seconds), still read: a
# hash written before an upgrade lives until its TTL.
_OLD_PROGRESS_NAMES = {PROGRESS_PERCENT: "percent", PROGRESS_STEP_INDEX: "step_index",
                       PROGRESS_STEP_TOTAL: "step_total", PROGRESS_STEP_NAME: "step_name",
                       PROGRESS_STEP_PERCENT: "step_percent",
                       PROGRESS_ETA_SECONDS: "eta_seconds"}


@dataclass(frozen=True, slots=True)
class Progress:
    percent: int
    step_index: int | None = None
    step_total: int | None = None
    step_name: str | None = None
    step_percent: int | None = None
    updated_at: float | None = None  # seconds since the epoch
    # Seconds left at the smoothed rate of the run so far (None until it can be estimated).
    eta_seconds: int | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> "Progress | None":
        """Parse a stored hash (either layout); anything malformed reads as "no progress",
        never an error."""
        if not raw:
            return None
        try:
            fields = {k.decode(): v.decode() for k, v in raw.items()}

            def value(name: str) -> str | None:
                found = fields.get(name)
                return found if found is not None else fields.get(_OLD_PROGRESS_NAMES[name])

            return cls(
                percent=clamp_percent(value(PROGRESS_PERCENT)),  # type: ignore[arg-type]
                step_index=_optional_int(value(PROGRESS_STEP_INDEX)),
                step_total=_optional_int(value(PROGRESS_STEP_TOTAL)),
                step_name=value(PROGRESS_STEP_NAME) or None,
                step_percent=_optional_percent(value(PROGRESS_STEP_PERCENT)),
                updated_at=_updated_at_seconds(fields),
                eta_seconds=_optional_seconds(value(PROGRESS_ETA_SECONDS)),
            )
        except (KeyError, ValueError, TypeError, UnicodeDecodeError):
            return None

    @classmethod
    def from_json_pairs(cls, raw: bytes | str) -> "Progress | None":
        """The hash as Lua's cjson encodes HGETALL's flat list (an empty one is `{}`)."""
        try:
            flat = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(flat, list) or len(flat) % 2:
            return None
        return cls.from_hash({str(k).encode(): str(v).encode()
                              for k, v in zip(flat[::2], flat[1::2], strict=True)})


def clamp_percent(value: float | str) -> int:
    return max(0, min(100, int(float(value))))


def _updated_at_seconds(fields: Mapping[str, str]) -> float | None:
    if fields.get(PROGRESS_UPDATED_AT_MS):
        return int(fields[PROGRESS_UPDATED_AT_MS]) / 1000
    return float(fields["updated_at"]) if fields.get("updated_at") else None


def _optional_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _optional_seconds(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    seconds = float(value)
    return int(seconds) if 0 <= seconds < float("inf") else None


def _optional_percent(value: str | None) -> int | None:
    return clamp_percent(value) if value not in (None, "") else None
