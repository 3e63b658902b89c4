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


def streaming(tenant: object, owner: object) -> None:
    """The person has an event stream open (a lease among their open streams, as opening one
    records it), so their events are kept in a history (`lua/record_owner_change.lua`)."""
    import time

    from jobbox import keys

    key = keys.owner_streams_key(str(tenant), str(owner))
    hour_ms = 60 * 60 * 1000
    client = outside_redis()
    client.zadd(key, {"a-test-stream": int(time.time() * 1000) + hour_ms})
    client.pexpire(key, hour_ms)


_ENVELOPE = ("f", "kind", "id", "tenant", "owner", "version", "status", "terminal", "fields")


def snapshot_document(raw: bytes | None) -> dict | None:
    """A stored snapshot of either format (jobbox.model) as the previous format's object,
    whose fields tests name (`["version"]`, `["fields"]`); written back, it is a snapshot of
    that format, which jobbox still reads."""
    if not raw:
        return None
    import json

    doc = json.loads(raw)
    if isinstance(doc, list):
        return dict(zip(_ENVELOPE, [1, *doc[1:]], strict=True))
    return doc
