"""The seed's video status helpers, now thin wrappers over jobbox (seed, step 1)."""

from typing import Any

from academy.videos.models import Video
from jobbox import cache_committed, cached_representation


def get_video_status_from_redis(video_id: int) -> dict[str, Any] | None:
    """The video's representation as Redis holds it; None on a miss or while Redis is down."""
    return cached_representation("video", str(video_id))


def cache_video_status(video_id: int) -> bool:
    """Store the video's committed state in Redis (never older than what Redis holds)."""
    video = Video.objects.filter(pk=video_id).first()
    return cache_committed(video) if video else False
