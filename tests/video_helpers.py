"""The service's videos in tests: create one, poll it, read its snapshot from Redis."""

from typing import Any

from academy.videos import services
from academy.videos.models import Video
from jobbox import caches, keys
from tests.redis_peek import outside_redis, snapshot_document


def stored_snapshot(video_id: int) -> dict[str, Any] | None:
    raw = outside_redis().get(keys.status_key("video", str(video_id)))
    return snapshot_document(raw)


def new_video(member: Any, title: str = "Lecture") -> Video:
    return services.create_video(
        tenant_id=member.tenant.pk, uploaded_by_id=member.user.pk, title=title
    )


def made_elsewhere(video: Video) -> Video:
    """As if `video`'s last transition was made by a worker, in another process: this one
    holds no outage copy of it (a transition committed here updates the copy it holds)."""
    caches.job_snapshots.discard(("video", str(video.pk)))
    return video


def poll(member: Any, video_id: Any) -> Any:
    return member.client().get(f"/api/videos/{video_id}/")
