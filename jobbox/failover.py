"""A Redis Cluster failover seen by this process's client: the repair of writes it lost.

A replica promoted over its master can miss the master's last writes (replication is
asynchronous), and the cluster keeps answering: no breaker opens, so the repair after an
outage (`jobbox.reconcile.reconcile_after_outage`) would not run and Redis would hold
older snapshots than clients were shown until the next periodic reconcile. The cluster
client re-reads its topology (`NodesManager.initialize`) after the errors a failover
causes; when the primaries it learns differ from those it knew, the listeners run
(`jobbox.apps` wires the reconciler's after-outage repair: a few bounded queries).
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis.cluster

logger = logging.getLogger(__name__)

_listeners: list[Callable[[], None]] = []


def on_primaries_changed(listener: Callable[[], None]) -> None:
    """Run `listener()` each time a cluster client of this process learns new primaries."""
    if listener not in _listeners:
        _listeners.append(listener)


def watch(client: redis.cluster.RedisCluster) -> None:
    """Tell the listeners when `client`'s topology refresh finds other primaries."""
    manager = client.nodes_manager
    initialize = manager.initialize
    lock = threading.Lock()
    known = _primaries(manager)

    def initialize_and_compare(*args: Any, **kwargs: Any) -> Any:
        nonlocal known
        result = initialize(*args, **kwargs)
        current = _primaries(manager)
        with lock:
            changed, known = current != known, current
        if changed:
            _notify()
        return result

    manager.initialize = initialize_and_compare


def _primaries(manager: Any) -> frozenset[str]:
    return frozenset(name for name, node in dict(manager.nodes_cache).items()
                     if node.server_type == redis.cluster.PRIMARY)


def _notify() -> None:
    logger.info("jobbox: the Redis Cluster's primaries changed (a failover)")
    for listener in list(_listeners):
        try:
            listener()
        except Exception:
            logger.exception("jobbox: a listener of a cluster failover failed")
