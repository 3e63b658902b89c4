"""How jobbox tracks a chore, and the toy project's tenant of a user."""

from collections.abc import Mapping
from typing import Any

from jobbox import JobStatusAPIView, Progress, TrackedJob
from tests.library.toyapp.models import Chore, Seat


class ChoreTracking(TrackedJob):
    kind = "chore"
    model = Chore
    status_namespace = "chore"  # chore:{id}:status
    progress_namespace = "job:chore"  # job:chore:{id}:progress
    running_statuses = frozenset({Chore.Status.TODO, Chore.Status.DOING})
    terminal_statuses = frozenset({Chore.Status.DONE, Chore.Status.DROPPED})
    tenant_field = "team"
    owner_field = "owner_id"

    def snapshot_fields(self, chore: Chore) -> dict[str, Any]:
        return {"id": chore.pk, "title": chore.title, "status": chore.status,
                "note": chore.note or None, "updated_at": chore.updated_at.isoformat()}

    def render(self, fields: Mapping[str, Any], progress: Progress | None) -> dict[str, Any]:
        return {**fields, "progress": progress.percent if progress else None}


class ChoreStatusView(JobStatusAPIView):
    kind = "chore"


def team_of(user: Any) -> int:
    return Seat.objects.get(user=user).team
