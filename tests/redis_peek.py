"""Redis seen from outside the code under test: what another process would read."""

import redis
import redis.cluster
from django.conf import settings

from jobbox import conf


def outside_redis() -> redis.Redis | redis.cluster.RedisCluster:
    """A separate connection: what another process would see (a cluster client on a cluster)."""
    url = conf.settings().REDIS_URL or getattr(settings, "REDIS_URL", None)
    if conf.settings().REDIS_CLUSTER:
        return redis.cluster.RedisCluster.from_url(url)
    return redis.Redis.from_url(url)
