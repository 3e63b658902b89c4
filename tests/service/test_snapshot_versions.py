"""Invariant 3: whatever the interleaving of fills and transitions, Redis ends at the DB's state.

Transitions commit in order and queue their after-commit writes; fills read the committed
row at some moment and write later. Hypothesis picks the operations and the order in which
the delayed writes land; Redis must never go backwards and must end equal to the database.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from academy.videos import services
from academy.videos.models import Video
from academy.videos.tracking import VideoTracking
from jobbox.write import store_snapshot
from tests.video_helpers import stored_snapshot

TRANSITIONS = {
    "mark_processing": lambda pk: services.mark_processing(pk, worker_id="w"),
    "complete": lambda pk: services.complete_video(pk, f"hls/{pk}/master.m3u8", 3),
    "fail": lambda pk: services.fail_video(pk, "boom"),
    "requeue": services.requeue_video,
}
operations = st.lists(st.sampled_from([*TRANSITIONS, "fill"]), min_size=1, max_size=12)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, data=st.data())
def test_fills_never_overwrite_newer_transitions(alice, django_capture_on_commit_callbacks,
                                                 ops, data):
    video = Video.objects.create(tenant=alice.tenant, uploaded_by=alice.user, title="t")
    pending = []  # delayed Redis writes, in the order they were produced
    for op in ops:
        if op == "fill":
            committed = Video.objects.get(pk=video.pk)
            snapshot = VideoTracking().snapshot_of(committed)
            pending.append(lambda s=snapshot: store_snapshot(s))
        else:
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                TRANSITIONS[op](video.pk)
            pending.extend(callbacks)

    order = data.draw(st.permutations(range(len(pending))))
    seen_versions = []
    for index in order:
        pending[index]()
        seen_versions.append(stored_snapshot(video.pk)["version"])
        assert seen_versions == sorted(seen_versions), "Redis went backwards"

    if pending:
        final = VideoTracking().snapshot_of(Video.objects.get(pk=video.pk))
        stored = stored_snapshot(video.pk)
        assert (stored["version"], stored["status"], stored["fields"]) == (
            final.version, final.status, final.fields)
