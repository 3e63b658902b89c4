"""One box reader with two entry points, one event codec: the stream's opening box is the
poll's box, and an event written to a history reads back as the job it was written for."""

import asyncio

from academy.videos import services
from jobbox import box as boxes
from jobbox import registry
from jobbox.events import JobChanged, ProgressReported, encode_event, parse_entry
from jobbox.model import Progress
from tests.video_helpers import new_video


def as_history_entry(fields: list[str | int]) -> dict[bytes, bytes]:
    """Field/value pairs as Redis hands a stream entry back: a dict of bytes."""
    pairs = iter(fields)
    return {str(name).encode(): str(value).encode()
            for name, value in zip(pairs, pairs, strict=True)}


def test_the_async_box_reader_reads_the_box_the_sync_reader_reads(alice):
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    tenant, owner = str(alice.tenant.pk), str(alice.user.pk)
    polled = boxes.read_box(tenant=tenant, owner=owner)  # indexes the box if needed
    streamed = asyncio.run(boxes.read_box_async(tenant=tenant, owner=owner))
    assert [entry.job_id for entry in polled.entries] == [str(video.pk)]
    assert streamed.body == polled.body
    assert streamed.last_event_id == polled.last_event_id


def test_an_encoded_event_decodes_to_the_job_it_was_written_for(alice):
    video = new_video(alice)
    snapshot = registry.get("video").snapshot_of(video)
    entry = parse_entry("5-0", as_history_entry(encode_event("changed", snapshot, ["status"])),
                        tenant=snapshot.tenant, owner=snapshot.owner)
    assert entry is not None and entry.needs_snapshot
    assert (entry.version, entry.status, entry.changed) == (snapshot.version, snapshot.status,
                                                            ("status",))
    event = entry.resolve(snapshot.encode().encode())  # as read from the job's key
    assert isinstance(event, JobChanged)
    assert (event.event_id, event.tenant, event.owner) == ("5-0", snapshot.tenant,
                                                           snapshot.owner)
    assert event.snapshot == snapshot


def test_a_progress_event_resolves_with_the_progress_read_from_the_job(alice):
    video = new_video(alice)
    snapshot = registry.get("video").snapshot_of(video)
    fields = encode_event("progressed", snapshot, ["progress"])
    entry = parse_entry("6-0", as_history_entry(fields), tenant=snapshot.tenant,
                        owner=snapshot.owner)
    assert entry is not None
    event = entry.resolve(snapshot.encode().encode(), Progress(percent=40))
    assert isinstance(event, ProgressReported)
    assert event.snapshot == snapshot
    assert event.progress == Progress(percent=40)
