"""The status snapshot: what Redis holds for a job, and the one JSON shape of a job.

A snapshot is the job's durable fields as the database has them at one row version, plus
the tenant (checked on every cache hit) and the owner (for the job box). The database path
builds the very same snapshot, so both paths render byte-for-byte the same JSON (DESIGN.md,
invariant 4).
"""

import json
from dataclasses import dataclass
from typing import Any

from django.db import models

from jobbox import conf
from jobbox.registry import TrackedJob

# Bumped when the stored shape changes; a snapshot of another format reads as a miss.
FORMAT = 1


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
            {
                "f": FORMAT,
                "kind": self.kind,
                "id": self.job_id,
                "tenant": self.tenant,
                "owner": self.owner,
                "version": self.version,
                "status": self.status,
                "terminal": self.terminal,
                "fields": self.fields,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @property
    def ttl_seconds(self) -> int:
        return conf.get("TERMINAL_TTL_SECONDS" if self.terminal else "RUNNING_TTL_SECONDS")


def decode(raw: bytes | str, *, kind: str, job_id: str) -> Snapshot | None:
    """Parse a stored snapshot; garbage, another format or another job's reads as a miss."""
    try:
        doc = json.loads(raw)
        snapshot = Snapshot(
            kind=doc["kind"],
            job_id=doc["id"],
            tenant=doc["tenant"],
            owner=doc["owner"],
            version=doc["version"],
            status=doc["status"],
            terminal=doc["terminal"],
            fields=doc["fields"],
        )
    except (ValueError, TypeError, KeyError):
        return None
    well_formed = (
        doc.get("f") == FORMAT
        and snapshot.kind == kind
        and snapshot.job_id == job_id
        and isinstance(snapshot.tenant, str)
        and type(snapshot.version) is int
        and isinstance(snapshot.fields, dict)
        and isinstance(snapshot.terminal, bool)
    )
    return snapshot if well_formed else None


def from_instance(job: TrackedJob, instance: models.Model) -> Snapshot:
    status = str(getattr(instance, job.status_field))
    owner = getattr(instance, job.owner_field) if job.owner_field else None
    fields = job.snapshot_fields(instance)
    # A JSON round trip makes the database path's values exactly what a Redis hit decodes.
    fields = json.loads(json.dumps(fields, ensure_ascii=False))
    return Snapshot(
        kind=job.kind,
        job_id=job.job_id_of(instance),
        tenant=str(getattr(instance, job.tenant_field)),
        owner=None if owner is None else str(owner),
        version=int(getattr(instance, job.version_field)),
        status=status,
        terminal=status in job.terminal_statuses,
        fields=fields,
    )
