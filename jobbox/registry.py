"""Tracked jobs: how jobbox reads, versions and renders a model it knows nothing else about.

A project subclasses `TrackedJob` once per model (a video, a spreadsheet job, ...) and calls
`register()` from its AppConfig.ready(). Jobbox never imports the project's models; it asks
the registered job. docs/explanation/architecture.md.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.db import models
from django.db.models import Q

from jobbox.model import Progress, Snapshot


class UnknownJobKind(LookupError):
    pass


class InvalidJobId(ValueError):
    """A job id from a request that cannot name any job (answered as 404, never a 500)."""


class TrackedJob:
    """One kind of job. Override the class attributes and `snapshot_fields` / `render`."""

    kind: ClassVar[str]
    model: ClassVar[type[models.Model]]
    # Key namespaces (docs/explanation/redis-layout.md): `<status_namespace>:{id}:status`, ...
    status_namespace: ClassVar[str]
    progress_namespace: ClassVar[str]
    running_statuses: ClassVar[frozenset[str]]
    terminal_statuses: ClassVar[frozenset[str]]
    id_field: ClassVar[str] = "pk"
    tenant_field: ClassVar[str] = "tenant_id"
    owner_field: ClassVar[str | None] = None
    version_field: ClassVar[str] = "version"
    status_field: ClassVar[str] = "status"
    # An indexed timestamp every transition updates (auto_now): the reconciler's bounded
    # query reads rows changed recently by it (jobbox.reconcile), it orders a job box rebuilt
    # from the database, and keeps a fill of a long-finished job out of its owner's box.
    changed_at_field: ClassVar[str] = "updated_at"

    def parse_id(self, raw: str) -> str:
        """Validate an id from a URL; default: a positive integer primary key."""
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) == 0:
            raise InvalidJobId(raw)
        return str(int(raw))

    def load(self, job_id: str) -> models.Model | None:
        """The one database read of the read path (a miss or a fallback)."""
        return self.model._default_manager.filter(**{self.id_field: job_id}).first()

    def load_many(self, job_ids: list[str]) -> list[models.Model]:
        """The rows of many jobs in one query (the outage path's batch refresh); ids that name
        nothing are left out."""
        return list(self.model._default_manager.filter(**{f"{self.id_field}__in": job_ids}))

    def load_live(self, *, since: datetime, limit: int) -> list[models.Model]:
        """The jobs most likely to be polled, in one bounded query: not finished, or changed
        since `since`; newest change first, at most `limit` (an outage's prefetch)."""
        unfinished = ~Q(**{f"{self.status_field}__in": sorted(self.terminal_statuses)})
        recent = Q(**{f"{self.changed_at_field}__gte": since})
        return list(self.model._default_manager.filter(unfinished | recent)
                    .order_by(f"-{self.changed_at_field}")[:limit])

    def job_id_of(self, instance: models.Model) -> str:
        return str(getattr(instance, self.id_field))

    def snapshot_of(self, instance: models.Model) -> Snapshot:
        """The snapshot of a row as it is now: what a transition, a fill or a repair stores."""
        status = str(getattr(instance, self.status_field))
        owner = getattr(instance, self.owner_field) if self.owner_field else None
        # A JSON round trip makes the database path's values exactly what a Redis hit decodes.
        fields = json.loads(json.dumps(self.snapshot_fields(instance), ensure_ascii=False))
        return Snapshot(
            kind=self.kind,
            job_id=self.job_id_of(instance),
            tenant=str(getattr(instance, self.tenant_field)),
            owner=None if owner is None else str(owner),
            version=int(getattr(instance, self.version_field)),
            status=status,
            terminal=status in self.terminal_statuses,
            fields=fields,
        )

    def snapshot_fields(self, instance: models.Model) -> dict[str, Any]:
        """The durable fields of the representation, JSON-native values only."""
        raise NotImplementedError

    def changed_at(self, fields: Mapping[str, Any]) -> datetime | None:
        """When a snapshot's row last changed, if its fields carry `changed_at_field` (ISO 8601)."""
        value = fields.get(self.changed_at_field)
        if not isinstance(value, str):
            return None
        try:
            changed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return changed if changed.tzinfo else changed.replace(tzinfo=UTC)

    def recent_for_owner(
        self, *, tenant: str, owner: str, since: datetime, limit: int
    ) -> list[models.Model]:
        """The one bounded query that rebuilds a job box: an owner's jobs in a tenant that are
        not finished or that changed since `since`, newest change first, at most `limit`."""
        if self.owner_field is None:
            return []
        unfinished = ~Q(**{f"{self.status_field}__in": sorted(self.terminal_statuses)})
        recent = Q(**{f"{self.changed_at_field}__gte": since})
        return list(
            self.model._default_manager.filter(
                unfinished | recent, **{self.tenant_field: tenant, self.owner_field: owner}
            ).order_by(f"-{self.changed_at_field}")[:limit]
        )

    def render(self, fields: Mapping[str, Any], progress: Progress | None) -> dict[str, Any]:
        """The response body: durable fields plus live progress, in the contract's order.
        A function of its arguments alone (no clock, no request, no language): the job box
        keeps each entry it rendered while the job's snapshot and progress stay the same."""
        raise NotImplementedError


_registry: dict[str, TrackedJob] = {}


def register(job: TrackedJob) -> TrackedJob:
    _registry[job.kind] = job
    return job


def get(kind: str) -> TrackedJob:
    try:
        return _registry[kind]
    except KeyError:
        raise UnknownJobKind(kind) from None


def for_model(model: type[models.Model]) -> TrackedJob:
    for job in _registry.values():
        if job.model is model or issubclass(model, job.model):
            return job
    raise UnknownJobKind(model.__name__)


def all_jobs() -> list[TrackedJob]:
    return list(_registry.values())
