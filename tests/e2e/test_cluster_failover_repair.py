"""A Redis Cluster failover that lost the last write is repaired without waiting for the
periodic reconcile (jobbox.failover): the promoted replica answers, no breaker opens, and
the cluster client's topology refresh is what tells this process."""

import subprocess

import pytest

from academy.videos import services
from jobbox import keys
from jobbox.client import get_redis, reset_clients
from process_tools import wait_until
from tests.redis_cluster import LocalCluster, cluster_capable_server
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, stored_snapshot

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(cluster_capable_server() is None,
                       reason="needs redis-server 7+ and redis-cli on PATH"),
]

# How long the test waits for a promotion and the repair's thread (not a speed assertion).
WAIT_SECONDS = 30


@pytest.fixture
def cluster(settings):
    with LocalCluster(masters=3, replicas=1) as started:
        settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": started.url, "REDIS_CLUSTER": True}
        reset_clients()
        yield started
        reset_clients()


def master_port_of(cluster: LocalCluster, key: str) -> int:
    port = int(outside_redis().get_node_from_key(key).port)
    assert port in cluster.master_ports()
    return port


def test_a_failover_that_lost_the_last_write_is_repaired_when_the_client_learns_of_it(
        alice, cluster):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    status_key = keys.status_key("video", str(video.pk))
    before_loss = outside_redis().get(status_key)
    services.complete_video(video.pk, "hls/out.m3u8", duration=60)
    get_redis().nodes_manager.initialize()  # the same primaries: nothing to repair
    # The write the promoted replica missed: its master goes back to the earlier state, and
    # its replica (in sync) takes over.
    outside_redis().set(status_key, before_loss)
    master = master_port_of(cluster, status_key)
    replica = cluster.replica_of(master)
    assert wait_until(lambda: cluster.node(replica).info("replication").get(
        "master_repl_offset") == cluster.node(master).info("replication").get(
        "master_repl_offset"), timeout_seconds=WAIT_SECONDS)
    subprocess.run(["redis-cli", "-p", str(replica), "CLUSTER", "FAILOVER"], check=True,
                   capture_output=True, timeout=WAIT_SECONDS)
    assert wait_until(lambda: cluster.node(replica).info("replication")["role"] == "master",
                      timeout_seconds=WAIT_SECONDS)
    assert stored_snapshot(video.pk)["status"] == "PROCESSING"  # what clients would see
    # What redis-py does after a failover's errors (MOVED, connections lost): re-read the
    # topology, again on each error until the nodes it asks name the promoted replica (the
    # other nodes learn of a promotion by gossip, a moment after the replica itself).
    assert wait_until(lambda: promoted_seen(replica), timeout_seconds=WAIT_SECONDS)
    assert wait_until(lambda: stored_snapshot(video.pk)["status"] == "READY",
                      timeout_seconds=WAIT_SECONDS)


def promoted_seen(promoted: int) -> bool:
    manager = get_redis().nodes_manager
    manager.initialize()
    return any(int(node.port) == promoted and node.server_type == "primary"
               for node in dict(manager.nodes_cache).values())
