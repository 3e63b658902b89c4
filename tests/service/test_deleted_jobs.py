"""A deleted job stays deleted: a fill that read its row just before the delete stores
nothing afterwards, and the owner's history tells open streams that the job is gone."""

import pytest

from academy.videos.models import Video
from jobbox import events, fill, keys, registry
from tests.redis_peek import outside_redis, streaming
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fill_that_read_the_row_before_its_delete_does_not_bring_the_job_back(
        alice, monkeypatch):
    video = new_video(alice)
    job_id = str(video.pk)
    outside_redis().delete(keys.status_key("video", job_id))  # a miss: the next read fills
    read_row = fill.load_snapshot

    def read_then_deleted(job, wanted):
        snapshot = read_row(job, wanted)
        Video.objects.filter(pk=video.pk).delete()  # commits between the read and the store
        return snapshot

    monkeypatch.setattr(fill, "load_snapshot", read_then_deleted)
    raced = fill.fill_once(registry.get("video"), job_id)
    monkeypatch.undo()

    assert raced is not None and raced.job_id == job_id  # it answered what it read
    assert outside_redis().get(keys.status_key("video", job_id)) is None
    assert poll(alice, video.pk).status_code == 404
    assert alice.client().get("/api/jobbox/").json()["jobs"] == []


def test_a_delete_records_a_deleted_event_in_the_owners_history(alice):
    streaming(alice.tenant.pk, alice.user.pk)
    video = new_video(alice)
    history = keys.owner_events_key(str(alice.tenant.pk), str(alice.user.pk))

    Video.objects.filter(pk=video.pk).delete()

    entries = outside_redis().xrange(history)
    event = events.from_entry(*entries[-1])
    assert isinstance(event, events.JobDeleted)
    assert event.as_json() == {"kind": "video", "id": str(video.pk)}
