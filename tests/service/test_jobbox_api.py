"""GET /api/jobbox/: every job of a person in one response, zero SQL, one Redis round trip."""

import json
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from redis.connection import Connection

from academy.tenants.models import Membership
from academy.videos import services
from jobbox import conf, keys, registry
from tests.redis_peek import outside_redis, snapshot_document
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)


def box(member, **headers):
    return member.client().get("/api/jobbox/", **headers)


def jobs_of(response):
    return [(entry["kind"], entry["job"]["id"], entry["job"]["status"])
            for entry in response.json()["jobs"]]


@contextmanager
def redis_round_trips():
    """Counts what every redis-py connection sends: one send is one round trip (a pipeline
    or a script is one send)."""
    sent = []
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    Connection.send_packed_command = counting
    try:
        yield sent
    finally:
        Connection.send_packed_command = original


def test_twenty_jobs_in_one_request_with_no_sql_and_one_round_trip_for_the_box(
        alice, django_assert_num_queries):
    videos = [new_video(alice, f"Lecture {n}") for n in range(20)]
    for video in videos[:10]:
        services.mark_processing(video.pk, worker_id="w1")
        services.report_video_progress(video.pk, percent=30, step_index=2, step_total=4,
                                       step_name="transcode 360p")
    for video in videos[:5]:
        services.complete_video(video.pk, f"hls/{video.pk}/master.m3u8", duration=60)
    box(alice)  # fills the token's principal cache (and the index, from the database)
    with django_assert_num_queries(0), redis_round_trips() as sent:
        response = box(alice)
    assert response.status_code == 200
    if conf.settings().REDIS_CLUSTER:
        # The principal, the index on the person's node, then one pipeline write per node
        # holding jobs (the local test cluster has 3 masters).
        assert len(sent) <= 1 + 2 + 3
    else:
        # One round trip: the cached principal and the whole box together.
        assert len(sent) == 1
        box_command = b"".join(sent[0]) if isinstance(sent[0], list) else sent[0]
        assert b"EVALSHA" in box_command
    found = jobs_of(response)
    assert len(found) == 20
    by_id = {job_id: status for _, job_id, status in found}
    assert {by_id[v.pk] for v in videos[:5]} == {"READY"}
    assert {by_id[v.pk] for v in videos[5:10]} == {"PROCESSING"}
    assert {by_id[v.pk] for v in videos[10:]} == {"UPLOADED"}
    processing = next(e["job"] for e in response.json()["jobs"] if e["job"]["id"] == videos[7].pk)
    assert processing["encoding_step_name"] == "transcode 360p"
    assert processing["encoding_progress"] == 30


def test_each_job_has_the_same_representation_as_its_own_endpoint(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=55, step_index=3, step_total=4,
                                   step_name="transcode 720p", step_percent=20)
    single = alice.client().get(f"/api/videos/{video.pk}/").json()
    [entry] = box(alice).json()["jobs"]
    video.refresh_from_db()
    assert entry == {"kind": "video", "id": str(video.pk), "version": video.version,
                     "job": single}


def test_unchanged_box_answers_304_and_a_transition_changes_it(alice, django_assert_num_queries):
    video = new_video(alice)
    first = box(alice)
    etag = first["ETag"]
    with django_assert_num_queries(0):
        again = box(alice, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    services.mark_processing(video.pk, worker_id="w1")
    changed = box(alice, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert jobs_of(changed) == [("video", video.pk, "PROCESSING")]


def test_newest_change_comes_first(alice):
    older, newer = new_video(alice, "older"), new_video(alice, "newer")
    services.mark_processing(older.pk, worker_id="w1")
    assert [job_id for _, job_id, _ in jobs_of(box(alice))] == [older.pk, newer.pk]


def test_another_tenant_and_another_person_of_the_same_tenant_see_none_of_it(alice, bob):
    new_video(alice)
    carol = get_user_model().objects.create_user(username="carol", password="pw-carol")
    Membership.objects.create(user=carol, tenant=alice.tenant)
    from rest_framework.authtoken.models import Token

    from tests.members import Member
    carol_token = Token.objects.create(user=carol).key
    carol_member = Member(tenant=alice.tenant, user=carol, token=carol_token)
    assert len(jobs_of(box(alice))) == 1
    assert jobs_of(box(bob)) == []
    assert jobs_of(box(carol_member)) == []


def test_a_snapshot_under_the_wrong_tenant_is_never_shown(alice, bob):
    video = new_video(alice)
    box(alice)
    # Garbage planted in Redis: alice's index pointing at a snapshot claiming another tenant.
    key = keys.status_key("video", str(video.pk))
    stored = outside_redis().get(key)
    doc = json.loads(stored)
    doc[3] = str(bob.tenant.pk)  # the positional snapshot's tenant (jobbox.model)
    outside_redis().set(key, json.dumps(doc))
    assert jobs_of(box(alice)) == []
    # The previous format's object too.
    outside_redis().set(key, json.dumps({**snapshot_document(stored),
                                         "tenant": str(bob.tenant.pk)}))
    assert jobs_of(box(alice)) == []


def test_missing_index_is_rebuilt_with_one_bounded_query_per_kind(alice, django_assert_num_queries):
    videos = [new_video(alice, f"L{n}") for n in range(3)]
    box(alice)
    outside_redis().delete(keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk)))
    kinds_with_owners = [job for job in registry.all_jobs() if job.owner_field]
    with django_assert_num_queries(len(kinds_with_owners)):
        rebuilt = box(alice)
    assert sorted(job_id for _, job_id, _ in jobs_of(rebuilt)) == [v.pk for v in videos]
    with django_assert_num_queries(0):
        assert box(alice).content == rebuilt.content


def test_empty_box_is_answered_from_redis_after_the_first_look(alice, django_assert_num_queries):
    assert jobs_of(box(alice)) == []
    with django_assert_num_queries(0):
        assert jobs_of(box(alice)) == []


def test_expired_snapshots_leave_the_box_and_the_index(alice):
    kept, expired = new_video(alice, "kept"), new_video(alice, "expired")
    box(alice)
    outside_redis().delete(keys.status_key("video", str(expired.pk)))
    assert [job_id for _, job_id, _ in jobs_of(box(alice))] == [kept.pk]
    index = outside_redis().zrange(keys.box_index_key(str(alice.tenant.pk),
                                                         str(alice.user.pk)), 0, -1)
    assert len(index) == 2  # the marker and the one job left
    assert not any(f"\t{expired.pk}\t".encode() in member for member in index)


def test_a_transition_during_a_rebuild_is_kept(alice, monkeypatch):
    from jobbox import box as job_box
    from jobbox.registry import TrackedJob

    first = new_video(alice, "first")
    index_key = keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk))
    outside_redis().delete(index_key)
    late = {}
    original = TrackedJob.recent_for_owner

    def query_then_a_new_job_commits(self, **kwargs):
        rows = original(self, **kwargs)
        if "video" not in late:  # once, whatever the number of job kinds
            late["video"] = new_video(alice, "committed after the query")
        return rows

    monkeypatch.setattr(TrackedJob, "recent_for_owner", query_then_a_new_job_commits)
    job_box.rebuild(tenant=str(alice.tenant.pk), owner=str(alice.user.pk))
    monkeypatch.setattr(TrackedJob, "recent_for_owner", original)
    ids = sorted(job_id for _, job_id, _ in jobs_of(box(alice)))
    assert ids == sorted([first.pk, late["video"].pk])


def test_a_fill_of_a_long_finished_job_does_not_bring_it_back(alice):
    from datetime import timedelta

    from django.utils import timezone

    from academy.videos.models import Video

    video = new_video(alice)
    services.fail_video(video.pk, "broken")
    box(alice)
    three_hours_ago = timezone.now() - timedelta(hours=3)
    Video.objects.filter(pk=video.pk).update(updated_at=three_hours_ago)
    index_key = keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk))
    for member in outside_redis().zrange(index_key, 0, -1):  # as if it had finished then
        if member != b"*complete*":
            outside_redis().zadd(index_key, {member: three_hours_ago.timestamp() * 1000})
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert alice.client().get(f"/api/videos/{video.pk}/").status_code == 200  # a fill
    assert jobs_of(box(alice)) == []


def test_a_fill_of_a_long_finished_ai_job_does_not_bring_it_back(alice):
    from datetime import timedelta

    from django.utils import timezone

    from academy.ai.models import AIJobModel
    from tests.ai_helpers import done_job, poll, status_key

    job_id = done_job(alice, {"ok": True})
    assert len(box(alice).json()["jobs"]) == 1
    three_hours_ago = timezone.now() - timedelta(hours=3)
    AIJobModel.objects.filter(job_id=job_id).update(updated_at=three_hours_ago)
    index_key = keys.box_index_key(str(alice.tenant.pk), str(alice.user.pk))
    outside_redis().delete(index_key)  # rebuilt from the database: the job is too old
    outside_redis().delete(status_key(job_id))
    assert poll(alice, job_id).status_code == 200  # a fill, carrying the row's updated_at
    assert box(alice).json()["jobs"] == []


def test_redis_down_answers_the_box_from_the_database(alice, settings):
    from process_tools import free_port

    video = new_video(alice)
    box(alice)
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    response = box(alice)
    assert response.status_code == 200
    assert jobs_of(response) == [("video", video.pk, "UPLOADED")]


def test_requires_authentication(db, client):
    assert client.get("/api/jobbox/").status_code in (401, 403)


def test_a_signed_in_browser_session_reads_the_box_with_no_sql(alice, client,
                                                              django_assert_num_queries):
    new_video(alice)
    client.login(username=alice.user.username, password=f"pw-{alice.tenant.slug}")
    client.get("/api/jobbox/")
    with django_assert_num_queries(0):
        response = client.get("/api/jobbox/")
    assert len(jobs_of(response)) == 1


def test_a_rolled_back_job_never_reaches_the_box_or_the_stream(alice):
    from django.db import transaction

    box(alice)  # the index exists: a write would land in it
    with pytest.raises(RuntimeError), transaction.atomic():
        new_video(alice, "rolled back")
        raise RuntimeError("the transaction fails")
    assert jobs_of(box(alice)) == []
    assert outside_redis().xlen(keys.owner_events_key(str(alice.tenant.pk),
                                                      str(alice.user.pk))) == 0


def test_a_box_polled_again_renders_only_the_entries_whose_bytes_changed(alice, monkeypatch):
    videos = [new_video(alice, f"Lecture {n}") for n in range(3)]
    for video in videos:
        services.mark_processing(video.pk, worker_id="w1")
    box(alice)
    rendered = []
    video_job = registry.get("video")
    render = video_job.render
    monkeypatch.setattr(video_job, "render",
                        lambda fields, progress: rendered.append(fields["id"]) or render(
                            fields, progress))
    first = box(alice).json()
    assert rendered == []  # every entry's snapshot and progress as last time
    services.report_video_progress(videos[1].pk, percent=55)
    second = box(alice).json()
    assert rendered == [videos[1].pk]
    assert second != first
    assert {e["job"]["id"]: e["job"]["encoding_progress"] for e in second["jobs"]}[
        videos[1].pk] == 55


def test_an_entry_kept_for_one_person_never_answers_another(alice, bob):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    from jobbox import box as boxes
    box(alice)  # builds the index
    reply = boxes._read_reply(str(alice.tenant.pk), str(alice.user.pk))
    mine = boxes.parse_reply(reply, tenant=str(alice.tenant.pk), owner=str(alice.user.pk))
    assert mine is not None and [e.job_id for e in mine.entries] == [str(video.pk)]
    # The same bytes, parsed for someone else: the kept entry is not theirs.
    theirs = boxes.parse_reply(reply, tenant=str(bob.tenant.pk), owner=str(bob.user.pk))
    assert theirs is not None and theirs.entries == []


def test_kept_box_entries_stay_within_their_byte_budget(alice):
    from jobbox import box as boxes
    video = new_video(alice)
    box(alice)
    reply = boxes._read_reply(str(alice.tenant.pk), str(alice.user.pk))
    member, raw_snapshot = boxes._text(reply[2]), reply[3]
    kept = boxes._ParsedEntries(max_bytes=20 * len(raw_snapshot))
    # A tenant whose job's progress changes all the time: each new progress is a new entry.
    for percent in range(200):
        progress = f'["percent","{percent}","updated_at","1"]'.encode()
        entry = kept.get(member, raw_snapshot, progress, str(alice.tenant.pk), str(alice.user.pk))
        assert entry is not None and entry.job_id == str(video.pk)
    assert 0 < kept._cache.currsize <= kept._cache.maxsize
    assert len(kept._cache) < 20  # the oldest went first
