"""jobbox on a real Redis Cluster (docs/explanation/invariants.md, invariant 12): every script in
one slot, the box read per node, the event stream through sharded pub/sub, and polling through a
master's failover. The tests start their own local clusters (`tests/redis_cluster.py`); `make
test-cluster` also runs the core suites on one."""

import threading
from collections import Counter

import pytest
import redis.connection

from academy.videos import services
from jobbox import box, keys
from jobbox.client import reset_clients
from jobbox.metrics import READS
from process_tools import wait_until
from tests.asgi_server import serve_asgi
from tests.redis_cluster import LocalCluster, cluster_capable_server
from tests.sse import SSEStream, is_status
from tests.video_helpers import new_video, poll

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(cluster_capable_server() is None,
                       reason="needs redis-server 7+ and redis-cli on PATH"),
]

# How long a test waits for the cluster to promote a replica (not a speed assertion).
FAILOVER_WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(masters=3, replicas=1) as started:
        yield started


@pytest.fixture(autouse=True)
def on_cluster(cluster, settings):
    cluster.flush()
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": cluster.url, "REDIS_CLUSTER": True}
    reset_clients()
    yield
    reset_clients()


@pytest.fixture(scope="module")
def server(cluster):
    with serve_asgi(cluster.url, REDIS_CLUSTER="1",
                    JOBBOX_STREAM_HEARTBEAT_SECONDS="0.5") as base:
        yield base


def slots_of(*names):
    from redis.cluster import key_slot

    return {key_slot(name.encode()) for name in names}


def test_a_persons_keys_share_one_slot_and_a_jobs_keys_another(alice):
    tenant, owner = str(alice.tenant.pk), str(alice.user.pk)
    assert len(slots_of(keys.box_index_key(tenant, owner), keys.owner_events_key(tenant, owner),
                        keys.owner_channel(tenant, owner),
                        keys.owner_streams_key(tenant, owner))) == 1
    assert len(slots_of(keys.status_key("video", "42"), keys.progress_key("job:video", "42"),
                        keys.missing_key("video", "42"),
                        keys.fill_lease_key("video", "42"))) == 1


def test_polls_transitions_and_progress_on_the_cluster(alice, bob, django_assert_num_queries):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=40, step_index=1, step_total=2,
                                   step_name="transcode 360p")
    poll(alice, video.pk)  # the principal is cached
    with django_assert_num_queries(0):
        body = poll(alice, video.pk).json()
    assert (body["status"], body["encoding_progress"]) == ("PROCESSING", 40)
    assert poll(bob, video.pk).status_code == 404  # tenant wall on a hit
    assert poll(alice, 999_999).status_code == 404  # negative entry on the cluster
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    assert poll(alice, video.pk).json()["status"] == "READY"


def sends_per_node():
    """Round trips sent to each node while active: one per command or pipeline write."""
    counts: Counter[str] = Counter()
    real = redis.connection.Connection.send_packed_command

    def counting(self, command, check_health=True):
        counts[f"{self.host}:{self.port}"] += 1
        return real(self, command, check_health)

    return counts, real, counting


def test_the_box_reads_the_index_then_each_node_once(alice, monkeypatch, cluster):
    videos = [new_video(alice, f"lecture {n}") for n in range(12)]
    first = box.read_box(tenant=str(alice.tenant.pk), owner=str(alice.user.pk))  # warm
    assert len(first.entries) == len(videos)
    counts, real, counting = sends_per_node()
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    again = box.read_box(tenant=str(alice.tenant.pk), owner=str(alice.user.pk))
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", real)
    assert again.body == first.body
    # The index script on the owner's node, then one pipeline write per node holding jobs.
    assert sum(counts.values()) <= 1 + len(cluster.master_ports())
    assert max(counts.values()) <= 2


def test_a_lost_owner_update_and_a_rebuild_on_the_cluster(alice):
    from jobbox.reconcile import reconcile_recent

    video = new_video(alice)
    index_key = keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk))
    from tests.redis_peek import outside_redis

    outside_redis().delete(index_key)
    rebuilt = box.read_box(tenant=str(alice.tenant.pk), owner=str(alice.user.pk))
    assert [entry.job_id for entry in rebuilt.entries] == [str(video.pk)]
    assert reconcile_recent().total_repaired == 0


def test_the_stream_on_the_cluster_pushes_resumes_and_resyncs(server, alice, cluster):
    video = new_video(alice)
    stream = SSEStream(server, alice.token)
    try:
        first = stream.next_event()
        assert first.name == "box"
        services.mark_processing(video.pk, worker_id="w1")
        services.report_video_progress(video.pk, percent=50, step_index=1, step_total=2)
        processing = stream.until(is_status("PROCESSING", video.pk))[-1]
        progressed = stream.until(lambda e: e.name == "progressed")[-1]
        assert progressed.data["job"]["encoding_progress"] == 50
    finally:
        stream.close()
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    resumed = SSEStream(server, alice.token, last_event_id=processing.id)
    try:
        assert resumed.until(is_status("READY", video.pk))[-1].name == "changed"
    finally:
        resumed.close()
    resync = SSEStream(server, alice.token, last_event_id="99999999999999999999-0")
    try:
        event = resync.next_event()
        assert (event.name, event.data["recovered"]) == ("resync", False)
    finally:
        resync.close()
    # One sharded subscription per node that holds a watched person's slot, no more.
    subscribers = [c for port in cluster.master_ports()
                   for c in cluster.node(port).client_list() if c["cmd"] == "ssubscribe"]
    assert len(subscribers) <= 1


def test_polling_through_a_master_failover_fails_no_poll(alice, settings):
    """A master holding the job's slot is killed; its replica takes over. Every poll is
    answered (from the database while the breaker is open), and Redis serves again after."""
    with LocalCluster(masters=3, replicas=0) as small:
        small_url = small.url
        settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": small_url, "REDIS_CLUSTER": True,
                           "BREAKER_OPEN_SECONDS": 0.2}
        reset_clients()
        video = new_video(alice)
        services.mark_processing(video.pk, worker_id="w1")
        master = _master_of(small, keys.status_key("video", str(video.pk)))
        replica = _add_replica(small, master)
        answers, stop = [], threading.Event()

        def keep_polling():
            from django.db import connection

            try:
                while not stop.is_set():
                    answers.append(poll(alice, video.pk).status_code)
            finally:
                connection.close()  # this thread's own connection

        redis_reads_before = READS.labels("video", "redis")._value.get()
        small.processes[master].kill()
        small.processes[master].wait()
        poller = threading.Thread(target=keep_polling)
        poller.start()
        try:
            small.wait_until_ok([replica])
            assert wait_until(lambda: small.node(replica).info("replication")["role"]
                              == "master", timeout_seconds=FAILOVER_WAIT_SECONDS)
            served_again = READS.labels("video", "redis")._value.get()
            assert wait_until(lambda: READS.labels("video", "redis")._value.get()
                              > served_again + 5, timeout_seconds=FAILOVER_WAIT_SECONDS)
        finally:
            stop.set()
            poller.join()
        assert answers and set(answers) == {200}
        assert READS.labels("video", "redis")._value.get() > redis_reads_before
        assert poll(alice, video.pk).json()["status"] == "PROCESSING"


def _master_of(cluster, key):
    from redis.cluster import key_slot

    slot = key_slot(key.encode())
    for start, end, master, *_ in cluster.node(cluster.ports[0]).execute_command(
            "CLUSTER SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise LookupError(key)


def _add_replica(cluster, master_port):
    """A new node replicating `master_port`, in sync before the failover."""
    import subprocess

    port = cluster.start_node(cluster_capable_server())
    subprocess.run(["redis-cli", "--cluster", "add-node", f"127.0.0.1:{port}",
                    f"127.0.0.1:{master_port}", "--cluster-slave"],
                   check=True, capture_output=True, timeout=60)
    assert wait_until(lambda: cluster.node(port).info("replication").get(
        "master_link_status") == "up", timeout_seconds=FAILOVER_WAIT_SECONDS)
    return port


def test_the_notifier_subscribes_people_whose_slots_differ_on_one_node(cluster):
    """SSUBSCRIBE refuses channels of different slots even when one node owns them all: a
    round (a reconnect's resubscription, people whose first streams start together) is
    confirmed only if each slot gets its own command."""
    import asyncio

    import redis.asyncio.cluster
    from redis.cluster import key_slot

    from jobbox.stream.notifier import Notifier

    async def subscribe_and_hear() -> set[str]:
        client = redis.asyncio.cluster.RedisCluster.from_url(cluster.url)
        await client.initialize()
        port = cluster.master_ports()[0]
        on_node = [channel for n in range(500)
                   if client.get_node_from_key(channel := keys.owner_channel("t1", str(n))).port
                   == port]
        channels = list({key_slot(channel.encode()): channel for channel in on_node}.values())[:3]
        assert len(slots_of(*channels)) == 3
        notifier = Notifier(client)
        try:
            await notifier.subscribe(channels)
            for channel in channels:
                await client.execute_command("SPUBLISH", channel, "grew")
            return {await asyncio.wait_for(notifier.next_channel(), 10) for _ in channels}
        finally:
            await notifier.close()
            await client.aclose()

    heard = asyncio.run(subscribe_and_hear())
    assert len(heard) == 3


def test_the_loops_cluster_client_waits_for_a_connection_instead_of_refusing(cluster):
    """Streams starting together send more commands at once than a node's few connections
    of the loop's client: each waits its turn, none is refused (redis-py's cluster pool
    would raise MaxConnectionsError, and the stream answer 503)."""
    import asyncio

    from jobbox import aio

    key = keys.owner_streams_key("t1", "7")

    async def pipelined() -> list:
        pipe = aio.async_client().pipeline()
        pipe.zcard(key)
        return await pipe.execute()

    async def burst() -> list:
        client = await aio.cluster_ready(aio.async_client())
        try:
            return await asyncio.gather(*[client.zcard(key) for _ in range(20)],
                                        *[pipelined() for _ in range(5)],
                                        return_exceptions=True)
        finally:
            await client.aclose()

    answers = asyncio.run(burst())
    assert answers == [0] * 20 + [[0]] * 5
