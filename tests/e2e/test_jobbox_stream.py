"""GET /api/jobbox/stream: transitions and progress pushed, resumable, tenant-walled, one Redis
connection per process however many streams are open. A real uvicorn process serves it."""

import json
import re
import urllib.request

import pytest
import redis

from academy.videos import services
from jobbox import keys
from process_tools import wait_until
from process_tools.redis_server import RedisServer
from tests.asgi_server import SERVER_PIDS, serve_asgi
from tests.sse import SSEStream, is_status
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)

# Frequent heartbeats, so the heartbeat test needs no long wait.
HEARTBEAT_SECONDS = "0.5"
METRICS_TOKEN = "stream-test-scraper"
# Streams one person may hold in these tests (the many-streams test opens 10 each).
STREAM_CAP = 10
# Principals re-checked often, so a revocation test waits little.
RECHECK_SECONDS = "0.5"
# How long the server may take to notice closed connections (not a speed assertion).
RELEASE_WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def private_redis():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(private_redis):
    with serve_asgi(private_redis.url, JOBBOX_STREAM_HEARTBEAT_SECONDS=HEARTBEAT_SECONDS,
                    METRICS_TOKEN=METRICS_TOKEN, JOBBOX_STREAMS_PER_PERSON=str(STREAM_CAP),
                    JOBBOX_STREAM_RECHECK_SECONDS=RECHECK_SECONDS) as base:
        yield base


@pytest.fixture(autouse=True)
def on_private_redis(private_redis, settings):
    """This test's writes go to the Redis the server reads (CLIENT LIST is ours alone)."""
    redis.Redis.from_url(private_redis.url).flushdb()
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": private_redis.url}


@pytest.fixture
def streams():
    opened = []

    def open_stream(*args, **kwargs):
        stream = SSEStream(*args, **kwargs)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def event_key(event):
    ms, seq = event.id.split("-")
    return int(ms), int(seq)


def test_a_stream_starts_with_the_box_and_receives_a_transition(server, alice, streams):
    existing = new_video(alice, "already there")
    stream = streams(server, alice.token)
    first = stream.next_event()
    assert first.name == "box"
    assert [entry["job"]["id"] for entry in first.data["jobs"]] == [existing.pk]
    services.mark_processing(existing.pk, worker_id="w1")
    seen = stream.until(is_status("PROCESSING", existing.pk))
    assert seen[-1].data["kind"] == "video"
    assert seen[-1].data["job"] == alice.client().get(f"/api/videos/{existing.pk}/").json()
    assert event_key(seen[-1]) > event_key(first)


def test_progress_reaches_the_stream_throttled_per_job(server, alice, streams, settings):
    # A long interval makes the throttle deterministic: one event per step, the rest held.
    settings.JOBBOX = {**settings.JOBBOX, "PROGRESS_EVENT_INTERVAL_SECONDS": 60.0}
    video = new_video(alice)
    stream = streams(server, alice.token)
    stream.next_event()
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=10, step_index=1, step_total=2,
                                   step_name="transcode 360p")
    seen = stream.until(lambda e: e.name == "progressed")
    for percent in (20, 30):  # held: same step, within the interval
        services.report_video_progress(video.pk, percent=percent, step_index=1, step_total=2,
                                       step_name="transcode 360p")
    services.report_video_progress(video.pk, percent=60, step_index=2, step_total=2,
                                   step_name="transcode 720p")
    seen += stream.until(lambda e: e.name == "progressed")
    services.report_video_progress(video.pk, percent=70, step_index=2, step_total=2,
                                   step_name="transcode 720p")  # held
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    seen += stream.until(is_status("READY", video.pk))
    progressed = [e.data["job"] for e in seen if e.name == "progressed"]
    assert [(p["encoding_progress"], p["encoding_step_name"]) for p in progressed] == [
        (10, "transcode 360p"), (60, "transcode 720p"),
    ]
    ids = [event_key(e) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_resume_after_a_dropped_connection_loses_no_transition(server, alice, streams):
    """An event names its job and version; the job's state is read when it is delivered, so
    a replay brings each job's newest state, and an event its job has moved past is skipped
    (the newer one follows): nothing is lost, nothing goes backwards."""
    video = new_video(alice)
    other = new_video(alice, "second")
    stream = streams(server, alice.token)
    stream.next_event()
    services.mark_processing(video.pk, worker_id="w1")
    last_seen = stream.until(is_status("PROCESSING", video.pk))[-1]
    stream.close()  # the connection drops; jobs move on meanwhile
    services.report_video_progress(video.pk, percent=50, step_index=1, step_total=2,
                                   step_name="transcode 360p")
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    services.mark_processing(other.pk, worker_id="w1")
    services.report_video_progress(other.pk, percent=50, step_index=1, step_total=2,
                                   step_name="transcode 360p")
    resumed = streams(server, alice.token, last_event_id=last_seen.id)
    seen = resumed.until(lambda e: e.name == "progressed")
    assert [(e.name, e.data["id"], e.data["job"]["status"]) for e in seen] == [
        ("changed", str(video.pk), "READY"), ("changed", str(other.pk), "PROCESSING"),
        ("progressed", str(other.pk), "PROCESSING"),
    ]
    assert seen[-1].data["job"]["encoding_progress"] == 50
    assert event_key(seen[0]) > event_key(last_seen)
    services.fail_video(other.pk, "broken file")
    assert resumed.until(is_status("FAILED", other.pk))[-1].name == "changed"


def test_an_event_id_older_than_the_kept_events_gets_an_explicit_resync(
        server, alice, streams, private_redis):
    video = new_video(alice)
    stream = streams(server, alice.token)
    old_id = stream.next_event().id
    stream.close()
    services.mark_processing(video.pk, worker_id="w1")
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    # Only the newest event is kept: the ones after old_id are gone.
    history = keys.owner_events_key(str(alice.tenant.pk), str(alice.user.pk))
    redis.Redis.from_url(private_redis.url).xtrim(history, maxlen=1, approximate=False)
    resumed = streams(server, alice.token, last_event_id=old_id)
    event = resumed.next_event()
    assert event.name == "resync"
    assert event.data["recovered"] is False
    assert [(e["id"], e["job"]["status"]) for e in event.data["jobs"]] == [
        (str(video.pk), "READY")]


def test_a_stream_carries_only_its_own_tenant_and_owner(server, alice, bob, streams):
    bobs_stream = streams(server, bob.token)
    assert bobs_stream.next_event().data == {"jobs": []}
    alices = new_video(alice)
    services.mark_processing(alices.pk, worker_id="w1")
    services.report_video_progress(alices.pk, percent=50, step_index=1, step_total=2)
    bobs = new_video(bob, "bob's own")
    seen = bobs_stream.until(lambda e: e.name == "changed")
    assert [e.data["id"] for e in seen] == [str(bobs.pk)]


def test_many_open_streams_share_one_redis_subscriber(server, alice, bob, streams,
                                                     private_redis):
    opened = [streams(server, member.token) for member in [alice, bob] * 10]
    for stream in opened:
        stream.next_event()
    video = new_video(alice)
    for stream in opened[::2]:
        stream.until(is_status("UPLOADED", video.pk))
    clients = redis.Redis.from_url(private_redis.url).client_list()
    subscribers = [c for c in clients if c["cmd"] in ("subscribe", "ssubscribe")]
    assert len(subscribers) == 1
    # One channel per person watched (alice's, bob's, and people of earlier tests not yet
    # dropped), not one per stream.
    assert int(subscribers[0]["sub"]) < len(opened)
    channels = set(redis.Redis.from_url(private_redis.url).pubsub_channels())
    assert {keys.owner_channel(str(m.tenant.pk), str(m.user.pk)).encode()
            for m in (alice, bob)} <= channels
    # Everything connected to this Redis (the server's reader, its bounded pools, this
    # test's own clients) stays under the number of open streams.
    assert len(clients) < len(opened)


def open_streams_on_server(base):
    request = urllib.request.Request(f"{base}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return float(re.search(r"^jobbox_streams_open (\S+)$", text, re.M)[1])


def wait_for_open_streams(base, count):
    wait_until(lambda: open_streams_on_server(base) == count,
               timeout_seconds=RELEASE_WAIT_SECONDS, interval_seconds=0.1)
    return open_streams_on_server(base)


def test_a_dropped_connection_releases_its_stream(server, alice, streams):
    assert wait_for_open_streams(server, 0) == 0  # earlier tests' closed streams included
    opened = [streams(server, alice.token) for _ in range(3)]
    for stream in opened:
        stream.next_event()
    assert open_streams_on_server(server) == 3
    for stream in opened:
        stream.close()
    assert wait_for_open_streams(server, 0) == 0


def test_heartbeats_keep_an_idle_stream_alive(server, alice, streams):
    stream = streams(server, alice.token)
    stream.next_event()
    with pytest.raises(TimeoutError):
        stream.next_event(timeout=2.0)  # no event: only comment lines arrive meanwhile
    assert stream.heartbeats >= 2


def test_a_stream_needs_authentication(server, streams):
    stream = streams(server, "0" * 40)
    assert stream.response.status == 401


def test_the_wsgi_path_declines_to_hold_a_stream(alice):
    assert alice.client().get("/api/jobbox/stream").status_code == 503


def test_a_render_that_reads_the_database_runs_off_the_event_loop(alice):
    import asyncio

    from django.contrib.auth import get_user_model
    from django.db import connection

    from jobbox.stream import off_loop_if_needed

    def usernames():
        try:
            return list(get_user_model().objects.values_list("username", flat=True))
        finally:
            connection.close()  # the worker thread's own connection, not left open

    assert asyncio.run(off_loop_if_needed(usernames)) == [alice.user.username]


def test_heartbeat_intervals_are_jittered_within_a_fifth():
    from jobbox.stream import heartbeat_after_seconds

    waits = [heartbeat_after_seconds(15.0) for _ in range(200)]
    assert all(12.0 <= wait <= 18.0 for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 100  # not one shared beat


def metric_on_server(base, name):
    request = urllib.request.Request(f"{base}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def threads_of(base):
    import os

    return len(os.listdir(f"/proc/{SERVER_PIDS[base]}/task"))


def test_open_streams_hold_no_thread_each(server, alice, bob, streams):
    """Django's ASGI handler kept a thread per open request (its middleware and the
    response's close run in the request's own thread); the stream app keeps none."""
    warm = streams(server, alice.token)
    warm.next_event()
    before = threads_of(server)
    opened = [streams(server, member.token) for member in [alice, bob] * 9]
    for stream in opened:
        stream.next_event()
    assert threads_of(server) - before < len(opened) // 3


def test_past_the_per_person_cap_a_stream_is_refused_with_429_across_processes(
        server, private_redis, alice, bob, streams):
    with serve_asgi(private_redis.url, METRICS_TOKEN=METRICS_TOKEN,
                    JOBBOX_STREAMS_PER_PERSON=str(STREAM_CAP)) as other:
        held = [streams(base, alice.token) for base in [server, other] * (STREAM_CAP // 2)]
        for stream in held:
            stream.next_event()
        for base in (server, other):
            refused = streams(base, alice.token)
            assert refused.response.status == 429
            body = json.loads(refused.response.read())
            assert body["limit"] == STREAM_CAP and "at most" in body["detail"]
        bobs = streams(server, bob.token)  # another person is not affected
        assert bobs.next_event().name == "box"
        held.pop().close()
        assert wait_until(lambda: _opens(server, alice.token), timeout_seconds=RELEASE_WAIT_SECONDS)


def _opens(base, token):
    stream = SSEStream(base, token)
    try:
        return stream.response.status == 200 and stream.next_event().name == "box"
    finally:
        stream.close()


def revoke_token(member):
    from rest_framework.authtoken.models import Token

    Token.objects.filter(key=member.token).delete()
    return 401


def deactivate_user(member):
    member.user.is_active = False
    member.user.save()
    return 401


def move_membership(member):
    from academy.tenants.models import Membership, Tenant

    elsewhere = Tenant.objects.create(slug="elsewhere", name="Elsewhere")
    membership = Membership.objects.get(user=member.user)
    membership.tenant = elsewhere
    membership.save()
    return 200  # a new stream, of the new tenant's box


@pytest.mark.parametrize("revoke", [revoke_token, deactivate_user, move_membership])
def test_a_revoked_principal_ends_its_open_stream(server, alice, streams, revoke):
    stream = streams(server, alice.token)
    assert stream.next_event().name == "box"
    new_video(alice)  # in the box of alice's first tenant
    answer_after = revoke(alice)
    event = stream.until(lambda e: e.name == "reauthenticate")[-1]
    assert "authenticate again" in event.data["detail"]
    with pytest.raises(EOFError):
        stream.next_event()
    reopened = streams(server, alice.token)
    assert reopened.response.status == answer_after
    if answer_after == 200:
        assert reopened.next_event().data["jobs"] == []


@pytest.mark.parametrize("last_event_id", [
    "99999999999999999999-0",  # past Redis's 64-bit range: was a traceback
    "18446744073709551615-18446744073709551615",  # in range, beyond the newest event
    "not-an-id",
])
def test_an_unusable_last_event_id_gets_a_resync(server, alice, streams, last_event_id):
    video = new_video(alice)
    stream = streams(server, alice.token, last_event_id=last_event_id)
    event = stream.next_event()
    assert event.name == "resync" and event.data["recovered"] is False
    assert [entry["job"]["id"] for entry in event.data["jobs"]] == [video.pk]
    services.mark_processing(video.pk, worker_id="w1")
    assert stream.until(is_status("PROCESSING", video.pk))  # and it goes on live


def test_a_process_reads_only_the_events_of_the_people_it_streams_to(
        server, private_redis, alice, bob, streams):
    with serve_asgi(private_redis.url, METRICS_TOKEN=METRICS_TOKEN) as other:
        alices = streams(server, alice.token)
        bobs = streams(other, bob.token)
        alices.next_event(), bobs.next_event()
        read_here = metric_on_server(server, "jobbox_stream_history_entries_read_total")
        read_there = metric_on_server(other, "jobbox_stream_history_entries_read_total")
        videos = [new_video(alice, f"lecture {n}") for n in range(10)]
        for video in videos:
            services.mark_processing(video.pk, worker_id="w1")
        alices.until(is_status("PROCESSING", videos[-1].pk))
        bobs_own = new_video(bob)
        assert bobs.until(is_status("UPLOADED", bobs_own.pk))[0].data["id"] == str(bobs_own.pk)
        assert metric_on_server(server, "jobbox_stream_history_entries_read_total") \
            - read_here >= 20
        # The other process read bob's history (the entry his first stream started it with,
        # and his one event), none of alice's twenty.
        assert metric_on_server(other, "jobbox_stream_history_entries_read_total") \
            - read_there == 2


# People whose first streams start in the same moment (the joining-round test).
BURST_PEOPLE = 40
VIDEO_STATUSES = ["UPLOADED", "PROCESSING", "READY"]


def sse_events(chunk):
    """(name, data) of each event framed in `chunk` (heartbeats and `retry:` left out)."""
    found = []
    for block in chunk.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines()
                     if ": " in line and not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_a_burst_of_new_people_is_subscribed_in_one_round_with_no_gap_or_duplicate(
        private_redis):
    """Streams of 40 people nobody watched yet start together: one SUBSCRIBE covers them all
    (not one per person), and a transition committed during the burst reaches each stream
    exactly once, in its snapshot or live."""
    import asyncio

    from django.db import connection

    from jobbox.box import read_box
    from jobbox.stream import start_stream
    from tests.members import make_member

    members = [make_member(f"burst-{n}") for n in range(BURST_PEOPLE)]
    videos = [new_video(member) for member in members]
    for member in members:  # their boxes indexed, as after a first page load
        read_box(tenant=str(member.tenant.pk), owner=str(member.user.pk))
    outside = redis.Redis.from_url(private_redis.url)
    outside.config_resetstat()

    def transitions(step):
        try:
            for video in videos:
                step(video.pk)
        finally:
            connection.close()  # the worker thread's own connection, not left open

    async def watch(member, video, processed):
        stream = await start_stream(tenant=str(member.tenant.pk),
                                    owner=str(member.user.pk), resume_from=None)
        statuses = []
        chunks = stream.events()
        try:
            async for chunk in chunks:
                for name, data in sse_events(chunk):
                    if name == "box":
                        statuses += [entry["job"]["status"] for entry in data["jobs"]]
                    elif name == "changed" and data["id"] == str(video.pk):
                        statuses.append(data["job"]["status"])
                if statuses[-1:] == ["READY"]:
                    return statuses
                if statuses:
                    await processed.wait()
        finally:
            await chunks.aclose()

    async def burst():
        processed = asyncio.Event()
        watching = [asyncio.ensure_future(watch(member, video, processed))
                    for member, video in zip(members, videos, strict=True)]
        # Committed while the streams subscribe and read their boxes.
        await asyncio.to_thread(transitions,
                                lambda pk: services.mark_processing(pk, worker_id="w1"))
        processed.set()
        await asyncio.to_thread(transitions, lambda pk: services.complete_video(
            pk, "hls/x/master.m3u8", duration=1))
        async with asyncio.timeout(60):
            return await asyncio.gather(*watching)

    seen = asyncio.run(burst())
    assert outside.info("commandstats")["cmdstat_subscribe"]["calls"] == 1
    for statuses in seen:
        # What each stream saw is the status history from its snapshot on: nothing
        # missing after it, nothing twice.
        assert statuses == VIDEO_STATUSES[VIDEO_STATUSES.index(statuses[0]):]


def test_with_many_streams_open_the_heap_is_frozen_and_fully_collected_on_schedule(
        monkeypatch):
    """The keeper freezes the heap (the collector stops walking open streams' objects) and,
    every GC_FULL_COLLECT_SECONDS, unfreezes it for one full collection: cyclic garbage
    frozen meanwhile is freed then, not kept for the process's life."""
    import asyncio
    import gc
    import weakref

    from jobbox.stream import keeper

    class Node:
        pass

    monkeypatch.setattr(keeper, "GC_FREEZE_MIN_STREAMS", 1)

    async def tend():
        heap = keeper.HeapTender()
        open_streams = 1
        garbage = Node()
        garbage.itself = garbage  # a cycle: only the collector frees it
        gone = weakref.ref(garbage)
        heap.tend(open_streams)
        assert gc.get_freeze_count() > 0
        del garbage
        gc.collect()
        assert gone() is not None  # frozen: out of the collector's sight
        heap._full_collect_at -= keeper.GC_FULL_COLLECT_SECONDS
        heap.tend(open_streams)
        assert gone() is None  # the scheduled full collection freed it
        assert gc.get_freeze_count() > 0  # and the streams' objects are frozen again

    try:
        asyncio.run(tend())
    finally:
        gc.unfreeze()


def test_a_transition_the_box_already_shows_is_not_sent_again_when_its_event_comes(
        server, alice, streams, monkeypatch):
    """A snapshot is stored before its owner's event is recorded (two slots): a stream whose
    box was read in between shows the new state, and then skips that event (a later id, the
    same version), while later transitions still come."""
    from jobbox import write

    video = new_video(alice)
    held = []
    record = write.record_owner_part
    monkeypatch.setattr(write, "record_owner_part",
                        lambda *args, **kwargs: held.append((args, kwargs)) or "")
    services.mark_processing(video.pk, worker_id="w1")  # the job's part only
    monkeypatch.setattr(write, "record_owner_part", record)
    stream = streams(server, alice.token)
    box = stream.next_event()
    assert [entry["job"]["status"] for entry in box.data["jobs"]] == ["PROCESSING"]
    (args, kwargs), = held
    assert record(*args, **kwargs)  # the PROCESSING event, recorded after the box was read
    services.complete_video(video.pk, "hls/x/master.m3u8", duration=1)
    seen = stream.until(is_status("READY", video.pk))
    assert [e.data["job"]["status"] for e in seen if e.name == "changed"] == ["READY"]


def test_after_its_pubsub_connection_is_killed_the_hub_resubscribes_and_misses_nothing(
        server, alice, bob, streams, private_redis):
    alices, bobs = streams(server, alice.token), streams(server, bob.token)
    alices.next_event(), bobs.next_event()
    outside = redis.Redis.from_url(private_redis.url)
    assert outside.client_kill_filter(_type="pubsub") >= 1
    # Published while the hub is away (or already back): read from the histories either way.
    video, bobs_video = new_video(alice), new_video(bob)
    assert alices.until(is_status("UPLOADED", video.pk))
    assert bobs.until(is_status("UPLOADED", bobs_video.pk))
    channels = set(outside.pubsub_channels())
    assert {keys.owner_channel(str(m.tenant.pk), str(m.user.pk)).encode()
            for m in (alice, bob)} <= channels  # both subscribed again, in one round


def test_a_deleted_job_reaches_open_and_resumed_streams_as_a_deleted_event(
        server, alice, streams):
    from academy.videos.models import Video

    video = new_video(alice)
    stream = streams(server, alice.token)
    first = stream.next_event()
    Video.objects.filter(pk=video.pk).delete()

    live = stream.until(lambda event: event.name == "deleted")[-1]
    resumed = streams(server, alice.token, last_event_id=first.id)
    replayed = resumed.until(lambda event: event.name == "deleted")[-1]

    assert live.data == replayed.data == {"kind": "video", "id": str(video.pk)}
    assert live.id == replayed.id
