"""Redis holds each thing once and small: an event names its job instead of copying it, the
progress hash and the principal use short fields, a history is bounded by age too. Values
of the previous layout, still in Redis during a rolling deploy, read as they did."""

import asyncio
import dataclasses
import json

import pytest

from academy.videos import services
from academy.videos.models import Video
from jobbox import keys, model, registry
from jobbox.auth.principals import (
    Principal,
    PrincipalSource,
    _Named,
    decode_principal,
    encode_principal,
)
from jobbox.client import get_redis
from jobbox.events import encode_history_start, parse_entry
from jobbox.model import Progress
from jobbox.stream.history import resolve_entries
from jobbox.write import report_progress, store_snapshot
from tests.redis_peek import streaming
from tests.video_helpers import new_video

# The previous layout's progress hash, as a worker wrote it before the upgrade.
PREVIOUS_PROGRESS = {"percent": "40", "step_index": "2", "step_total": "4",
                     "step_name": "transcode 360p", "step_percent": "60",
                     "updated_at": "1796644800.5", "published_ms": "1796644800500",
                     "published_step": "2"}

# Transitions reach Redis after commit: the tests commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def alice_streams(alice) -> None:
    """Alice has a stream open: her events are kept in her history."""
    streaming(alice.tenant.pk, alice.user.pk)


def history_of(alice) -> str:
    return keys.owner_events_key(str(alice.tenant.pk), str(alice.user.pk))


def replay(alice, entries) -> list:
    return asyncio.run(resolve_entries(entries, tenant=str(alice.tenant.pk),
                                       owner=str(alice.user.pk)))


def test_a_transitions_event_names_the_job_its_state_and_what_changed_without_a_snapshot(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    (_, fields), = get_redis().xrevrange(history_of(alice), count=1)
    assert fields == {b"e": b"changed", b"t": str(alice.tenant.pk).encode(),
                      b"o": str(alice.user.pk).encode(), b"k": b"video",
                      b"i": str(video.pk).encode(),
                      b"v": b"2", b"st": b"PROCESSING", b"ch": b"status,updated_at"}


def test_an_event_of_a_job_that_moved_on_is_skipped_and_its_newest_carries_the_state(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=40, step_index=2, step_total=4)
    entries = get_redis().xrange(history_of(alice))
    events = replay(alice, entries)
    # created (v1) is behind the stored v2: skipped; v2's change and progress are current.
    assert [(event.name, event.snapshot.version) for event in events] == [
        ("changed", 2), ("progressed", 2)]
    assert events[-1].representation()["encoding_progress"] == 40


def test_event_entries_of_the_previous_layout_replay_with_the_snapshot_they_carry(alice):
    video = new_video(alice)
    snapshot = registry.get("video").snapshot_of(video)
    tenant, owner = str(alice.tenant.pk), str(alice.user.pk)
    history = history_of(alice)
    redis = get_redis()
    carried = redis.xadd(history, {"e": "progressed", "t": tenant, "o": owner, "k": "video",
                                   "i": snapshot.job_id, "s": snapshot.encode(),
                                   "p": json.dumps(["percent", "30"])})
    too_large = redis.xadd(history, {"e": "changed", "t": tenant, "o": owner, "k": "video",
                                     "i": snapshot.job_id, "s": "", "p": "[]"})
    redis.xadd(history, {"e": "changed", "t": tenant, "o": "someone-else", "k": "video",
                         "i": snapshot.job_id, "s": snapshot.encode(), "p": "[]"})
    events = replay(alice, redis.xrange(history, min=carried))
    assert [(event.event_id, event.name) for event in events] == [
        (carried.decode(), "progressed"), (too_large.decode(), "changed")]
    assert events[0].progress == Progress(percent=30)
    assert all(event.snapshot == snapshot for event in events)


def test_a_progress_hash_of_the_previous_layout_reads_and_is_rewritten_in_short_fields(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    progress_key = keys.progress_key("job:video", str(video.pk))
    redis = get_redis()
    redis.delete(progress_key)
    redis.hset(progress_key, mapping=PREVIOUS_PROGRESS)
    assert Progress.from_hash(redis.hgetall(progress_key)) == Progress(
        percent=40, step_index=2, step_total=4, step_name="transcode 360p", step_percent=60,
        updated_at=1796644800.5)
    report_progress("video", str(video.pk), percent=10, step_index=2)  # never backwards
    rewritten = redis.hgetall(progress_key)
    assert not set(PREVIOUS_PROGRESS) & {name.decode() for name in rewritten}
    assert Progress.from_hash(rewritten).percent == 40


def test_a_principal_of_the_previous_layout_reads_and_still_matches_its_session(alice):
    full_hash = "ab" * 32
    previous = json.dumps({"user_id": 7, "username": "ann", "is_active": True,
                           "is_staff": False, "is_superuser": False, "tenant": "3",
                           "session_hash": full_hash, "session_generation": "g1"}).encode()
    principal = decode_principal(previous)
    assert principal is not None
    assert (principal.user_id, principal.tenant, principal.session_generation) == (7, "3", "g1")
    session = PrincipalSource(_Named(keys.user_principal_key(7), 7), user_id=7,
                              session_hash=full_hash, session_generation="g1")
    assert session.accept(principal) == principal
    other_password = PrincipalSource(_Named(keys.user_principal_key(7), 7), user_id=7,
                                     session_hash="cd" * 32, session_generation="g1")
    assert other_password.accept(principal) is None


def test_a_principal_is_stored_in_short_fields_and_reads_back_the_same():
    principal = Principal(user_id=7, username="ann", is_active=True, is_staff=True,
                          is_superuser=False, tenant=None, session_hash="ab" * 32,
                          session_generation="g1")
    encoded = encode_principal(principal)
    assert len(encoded) < 100
    assert decode_principal(encoded.encode()) == principal


def test_a_history_drops_entries_older_than_its_ttl_on_the_next_event(alice):
    video = new_video(alice)
    history = history_of(alice)
    get_redis().delete(history)
    get_redis().xadd(history, {"e": "changed", "t": str(alice.tenant.pk),
                               "o": str(alice.user.pk), "k": "video", "i": str(video.pk),
                               "v": "1",
                               "st": "UPLOADED", "ch": "*"}, id="1-0")  # from 1970
    services.mark_processing(video.pk, worker_id="w1")
    ids = [entry_id for entry_id, _ in get_redis().xrange(history)]
    assert b"1-0" not in ids and ids


def test_events_of_one_job_and_version_read_together_are_delivered_once(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    for step in (1, 2):  # a new step is always published
        services.report_video_progress(video.pk, percent=20 * step, step_index=step,
                                       step_total=2)
    entries = get_redis().xrange(history_of(alice))
    assert [fields[b"e"] for _, fields in entries].count(b"progressed") == 2
    progressed = [event for event in replay(alice, entries) if event.name == "progressed"]
    assert [event.event_id for event in progressed] == [entries[-1][0].decode()]
    assert progressed[0].progress.step_index == 2


def test_an_entry_naming_another_person_is_not_delivered_from_this_history(alice):
    video = new_video(alice)
    history = history_of(alice)
    stray = get_redis().xadd(history, {"e": "changed", "t": str(alice.tenant.pk),
                                       "o": "someone-else", "k": "video",
                                       "i": str(video.pk), "v": "1", "st": "UPLOADED",
                                       "ch": "*"})
    assert replay(alice, get_redis().xrange(history, min=stray)) == []


def test_a_person_with_no_stream_open_and_no_history_gets_no_history_but_a_full_box(bob):
    video = new_video(bob)
    services.mark_processing(video.pk, worker_id="w1")
    report_progress("video", str(video.pk), percent=40, step_index=2, step_total=4)
    assert get_redis().exists(keys.owner_events_key(str(bob.tenant.pk), str(bob.user.pk))) == 0
    jobs = bob.client().get("/api/jobbox/").json()["jobs"]
    assert [(job["id"], job["job"]["status"], job["job"]["encoding_progress"])
            for job in jobs] == [(str(video.pk), "PROCESSING", 40)]


def test_a_history_that_stands_keeps_every_event_after_its_stream_closed(alice):
    video = new_video(alice)
    get_redis().delete(keys.owner_streams_key(str(alice.tenant.pk), str(alice.user.pk)))
    services.mark_processing(video.pk, worker_id="w1")
    entries = get_redis().xrange(history_of(alice))
    assert [(fields[b"e"], fields[b"v"]) for _, fields in entries] == [
        (b"changed", b"1"), (b"changed", b"2")]


def box_index_of(member) -> dict[bytes, float]:
    index = keys.box_index_key(str(member.tenant.pk), str(member.user.pk))
    return dict(get_redis().zrange(index, 0, -1, withscores=True))


def test_a_box_member_names_the_job_by_kind_and_id_only(alice):
    video = new_video(alice)
    alice.client().get("/api/jobbox/")  # the index is built, then the change lands in it
    services.mark_processing(video.pk, worker_id="w1")
    assert f"video\t{video.pk}".encode() in box_index_of(alice)
    assert all(member.count(b"\t") == 1 for member in box_index_of(alice)
               if member.startswith(b"video"))


def test_a_box_member_of_the_previous_layout_is_read_then_replaced_at_the_jobs_change(alice):
    video = new_video(alice)
    alice.client().get("/api/jobbox/")
    job = registry.get("video")
    short = keys.box_member("video", str(video.pk)).encode()
    previous = keys.previous_box_member(
        "video", str(video.pk), status_namespace=job.status_namespace,
        progress_namespace=job.progress_namespace).encode()
    redis = get_redis()
    index = keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk))
    score = box_index_of(alice)[short]
    redis.zrem(index, short)
    redis.zadd(index, {previous: score})

    jobs = alice.client().get("/api/jobbox/").json()["jobs"]
    assert [(job["id"], job["job"]["status"]) for job in jobs] == [(str(video.pk), "UPLOADED")]
    services.mark_processing(video.pk, worker_id="w1")
    assert previous not in box_index_of(alice) and short in box_index_of(alice)
    # Both written (a rolling deploy): the job shows once.
    redis.zadd(index, {previous: score})
    jobs = alice.client().get("/api/jobbox/").json()["jobs"]
    assert [(job["id"], job["job"]["status"]) for job in jobs] == [
        (str(video.pk), "PROCESSING")]


def stored_raw(video) -> bytes:
    return get_redis().get(keys.status_key("video", str(video.pk)))


def test_a_snapshot_is_stored_positionally_and_reads_back_the_same(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    raw = stored_raw(video)
    doc = json.loads(raw)
    assert doc[:8] == [model.FORMAT, "video", str(video.pk), str(alice.tenant.pk),
                       str(alice.user.pk), 2, "PROCESSING", False]
    snapshot = model.decode_snapshot(raw, kind="video", job_id=str(video.pk))
    assert snapshot is not None and snapshot.encode().encode() == raw


def previous_format(snapshot: model.Snapshot) -> str:
    """A snapshot as the previous layout stored it: an object of named fields."""
    return json.dumps({"f": 1, "kind": snapshot.kind, "id": snapshot.job_id,
                       "tenant": snapshot.tenant, "owner": snapshot.owner,
                       "version": snapshot.version, "status": snapshot.status,
                       "terminal": snapshot.terminal, "fields": snapshot.fields})


def test_a_snapshot_of_the_previous_format_is_served_and_guards_its_version(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    good = alice.client().get(f"/api/videos/{video.pk}/").content
    current = model.decode_snapshot(stored_raw(video), kind="video", job_id=str(video.pk))
    get_redis().set(keys.status_key("video", str(video.pk)), previous_format(current))

    assert alice.client().get(f"/api/videos/{video.pk}/").content == good
    jobs = alice.client().get("/api/jobbox/").json()["jobs"]
    assert [job["job"]["status"] for job in jobs] == ["PROCESSING"]
    # The scripts read its version: an older snapshot is refused, a newer one replaces it.
    older = registry.get("video").snapshot_of(Video.objects.get(pk=video.pk))
    assert store_snapshot(dataclasses.replace(older, version=1)) is False
    # A progress report reads it too (running, with an owner): recorded and announced.
    assert report_progress("video", str(video.pk), percent=30, step_index=1) is True
    assert get_redis().xrevrange(history_of(alice), count=1)[0][1][b"e"] == b"progressed"
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=10)
    assert json.loads(stored_raw(video))[6] == "READY"


def test_the_entry_that_starts_a_history_is_no_event_of_anyone(alice):
    tenant, owner = str(alice.tenant.pk), str(alice.user.pk)
    fields = encode_history_start(tenant=tenant, owner=owner)
    entry_id = get_redis().xadd(history_of(alice), dict(zip(fields[::2], fields[1::2],
                                                            strict=True)))
    (found_id, found), = get_redis().xrange(history_of(alice), min=entry_id)
    assert parse_entry(found_id, found, tenant=tenant, owner=owner) is None
    assert replay(alice, [(found_id, found)]) == []
