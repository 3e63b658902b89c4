"""Garbage in Redis is a miss: replaced, never served, never a 500 (docs/explanation/invariants.md,
invariant 6)."""

import json

import pytest

from academy.videos import services
from academy.videos.redis_status_cache import get_video_status_from_redis
from jobbox import keys, model
from jobbox.auth.principals import decode_principal
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll, stored_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def running_video(member):
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    return video


STRING_GARBAGE = {
    "not json": lambda doc: b"\xff\xfe{not json",
    "json of another shape": lambda doc: json.dumps({"f": 1, "version": 10**6}),
    "json list": lambda doc: json.dumps([1, 2, 3]),
    "another format version": lambda doc: json.dumps({**doc, "f": model.FORMAT + 1}),
    "another job's snapshot": lambda doc: json.dumps({**doc, "id": "999999", "version": 10**6}),
    "version not an integer": lambda doc: json.dumps({**doc, "version": "7"}),
    "fields not an object": lambda doc: json.dumps({**doc, "fields": "x"}),
}


@pytest.mark.parametrize("name", list(STRING_GARBAGE))
def test_garbage_string_at_the_status_key_is_replaced_and_never_served(alice, name):
    video = running_video(alice)
    good = poll(alice, video.pk)
    key = keys.status_key("video", str(video.pk))
    outside_redis().set(key, STRING_GARBAGE[name](stored_snapshot(video.pk)))
    assert get_video_status_from_redis(video.pk) is None  # the seed helper never serves it
    response = poll(alice, video.pk)
    assert response.status_code == 200
    assert response.content == good.content
    assert model.decode_snapshot(outside_redis().get(key), kind="video",
                            job_id=str(video.pk)) is not None  # replaced by the real one


@pytest.mark.parametrize("redis_type", ["hash", "list", "set"])
def test_another_redis_type_at_the_status_key_is_replaced(alice, redis_type):
    video = running_video(alice)
    good = poll(alice, video.pk)
    key = keys.status_key("video", str(video.pk))
    r = outside_redis()
    r.delete(key)
    {"hash": lambda: r.hset(key, "a", "b"), "list": lambda: r.rpush(key, "a"),
     "set": lambda: r.sadd(key, "a")}[redis_type]()
    response = poll(alice, video.pk)
    assert response.status_code == 200
    assert response.content == good.content
    assert r.type(key) == b"string"


def test_garbage_progress_reads_as_no_progress_and_is_replaced_by_the_next_report(alice):
    video = running_video(alice)
    progress_key = keys.progress_key("job:video", str(video.pk))
    outside_redis().set(progress_key, "garbage")
    response = poll(alice, video.pk)
    assert response.status_code == 200
    assert response.json()["encoding_progress"] is None
    assert services.report_video_progress(video.pk, percent=40) is True
    assert poll(alice, video.pk).json()["encoding_progress"] == 40


def test_a_negative_entry_of_another_type_or_value_is_ignored_and_replaced(alice):
    video = new_video(alice)
    missing_id = str(video.pk + 1000)
    r = outside_redis()
    r.hset(keys.missing_key("video", missing_id), "a", "b")
    assert poll(alice, missing_id).status_code == 404
    assert r.get(keys.missing_key("video", missing_id)) == b"1"
    # A value other than the marker never hides a job that exists.
    r.set(keys.missing_key("video", str(video.pk)), "yes")
    r.delete(keys.status_key("video", str(video.pk)))
    assert poll(alice, video.pk).status_code == 200


@pytest.mark.parametrize("lease", ["list", "string without expiry"])
def test_a_garbage_fill_lease_does_not_block_fills(alice, lease, django_assert_max_num_queries):
    video = new_video(alice)
    poll(alice, video.pk)
    r = outside_redis()
    lease_key = keys.fill_lease_key("video", str(video.pk))
    r.delete(keys.status_key("video", str(video.pk)))
    if lease == "list":
        r.rpush(lease_key, "x")
    else:
        r.set(lease_key, "someone long gone")
    with django_assert_max_num_queries(1):
        assert poll(alice, video.pk).status_code == 200
    assert not r.exists(lease_key)  # taken over, then released


@pytest.mark.parametrize("garbage", [b"not json", b'{"user_id": "1"}', b"[]", "hash"])
def test_a_garbage_cached_principal_is_replaced_not_read_as_an_unknown_token(alice, garbage):
    video = running_video(alice)
    key = keys.token_principal_key(alice.token)
    r = outside_redis()
    r.delete(key)
    if garbage == "hash":
        r.hset(key, "a", "b")
    else:
        r.set(key, garbage)
    assert poll(alice, video.pk).status_code == 200
    assert decode_principal(r.get(key)).user_id == alice.user.pk
