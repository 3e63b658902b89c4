"""How jobbox tracks a Video: the seed's keys, states and response fields."""

from collections.abc import Mapping
from typing import Any

from academy.videos.models import Video
from jobbox import Progress, TrackedJob


class VideoTracking(TrackedJob):
    kind = "video"
    model = Video
    status_namespace = "video"  # video:{id}:status
    progress_namespace = "job:video"  # job:video:{id}:progress
    running_statuses = frozenset({Video.Status.PROCESSING})
    terminal_statuses = frozenset({Video.Status.READY, Video.Status.FAILED,
                                   Video.Status.CANCELLED})
    owner_field = "uploaded_by_id"

    def snapshot_fields(self, instance: Video) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "title": instance.title,
            "status": instance.status,
            "hls_path": instance.hls_path or None,
            "duration": instance.duration,
            "error_reason": instance.error_reason or None,
            "attempt": instance.attempt,
            "previous_attempts": instance.previous_attempts,
            "updated_at": instance.updated_at.isoformat(),
        }

    def render(self, fields: Mapping[str, Any], progress: Progress | None) -> dict[str, Any]:
        # The seed's VideoDetailView fields, always all of them, in one order on both paths.
        # A READY video is 100 % done whatever the last progress report said.
        percent = progress.percent if progress else None
        if fields["status"] == Video.Status.READY:
            percent = 100
        running = fields["status"] == Video.Status.PROCESSING
        return {
            "id": fields["id"],
            "title": fields["title"],
            "status": fields["status"],
            "hls_path": fields["hls_path"],
            "duration": fields["duration"],
            "error_reason": fields["error_reason"],
            # A snapshot stored before retries existed has neither: its first run.
            "attempt": fields.get("attempt", 1),
            "previous_attempts": fields.get("previous_attempts", []),
            "encoding_progress": percent,
            "encoding_step_index": progress.step_index if progress else None,
            "encoding_step_total": progress.step_total if progress else None,
            "encoding_step_name": progress.step_name if progress else None,
            "encoding_step_percent": progress.step_percent if progress else None,
            # Seconds left at the run's smoothed rate; null until known, and once it ended.
            "eta_seconds": progress.eta_seconds if running and progress else None,
            "updated_at": fields["updated_at"],
        }
