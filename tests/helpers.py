"""Small helpers the tests share: committing transitions, peeking at Redis from outside."""

import json
from typing import Any

import redis
import redis.cluster
from django.conf import settings

from academy.videos import services
from academy.videos.models import Video
from jobbox import conf, keys


def outside_redis() -> redis.Redis | redis.cluster.RedisCluster:
    """A separate connection: what another process would see (a cluster client on a cluster)."""
    url = conf.settings().REDIS_URL or settings.REDIS_URL
    if conf.settings().REDIS_CLUSTER:
        return redis.cluster.RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def stored_snapshot(video_id: int) -> dict[str, Any] | None:
    raw = outside_redis().get(keys.status_key("video", str(video_id)))
    return json.loads(raw) if raw else None


def new_video(member: Any, title: str = "Lecture") -> Video:
    return services.create_video(
        tenant_id=member.tenant.pk, uploaded_by_id=member.user.pk, title=title
    )


def poll(member: Any, video_id: Any) -> Any:
    return member.client().get(f"/api/videos/{video_id}/")
