"""The write side on the toy model: Redis never shows what the database did not commit,
versions only move forward (a slow fill loses to a newer transition), progress lives in
Redis alone, and a deleted row's job is gone at the next poll."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobbox import report_progress
from jobbox.write import store_snapshot
from tests.library.chores import doing_chore, new_chore, stored_snapshot
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore
from tests.library.toyapp.tracking import ChoreTracking


class Abort(Exception):
    """Raised to roll a transaction back."""


@pytest.mark.django_db(transaction=True)
def test_nothing_reaches_redis_before_commit_and_a_rollback_leaves_it_as_it_was(ann):
    chore = new_chore(ann)
    before = stored_snapshot(chore.pk)
    with pytest.raises(Abort), transaction.atomic():
        services.move_chore(chore.pk, Chore.Status.DOING)
        assert stored_snapshot(chore.pk) == before  # inside the transaction: not yet
        raise Abort
    assert stored_snapshot(chore.pk) == before
    assert ann.poll(chore.pk).json()["status"] == "TODO"

    with transaction.atomic():
        services.move_chore(chore.pk, Chore.Status.DOING)
        assert stored_snapshot(chore.pk) == before
    assert stored_snapshot(chore.pk)["status"] == "DOING"  # after commit, at once


@pytest.mark.django_db(transaction=True)
def test_a_slow_fill_loses_to_a_newer_transition(ann):
    chore = new_chore(ann)
    read_by_a_slow_fill = ChoreTracking().snapshot_of(Chore.objects.get(pk=chore.pk))
    services.move_chore(chore.pk, Chore.Status.DONE, note="done first")
    assert store_snapshot(read_by_a_slow_fill) is False
    stored = stored_snapshot(chore.pk)
    assert (stored["version"], stored["status"]) == (read_by_a_slow_fill.version + 1, "DONE")
    assert ann.poll(chore.pk).json()["note"] == "done first"


TRANSITIONS = {
    "start": lambda pk: services.move_chore(pk, Chore.Status.DOING),
    "finish": lambda pk: services.move_chore(pk, Chore.Status.DONE, note="ok"),
    "drop": lambda pk: services.move_chore(pk, Chore.Status.DROPPED, note="no"),
    "reopen": lambda pk: services.move_chore(pk, Chore.Status.TODO),
}


@pytest.mark.django_db
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from([*TRANSITIONS, "fill"]), min_size=1, max_size=10),
       data=st.data())
def test_redis_never_goes_back_whatever_order_the_writes_land_in(
        ann, django_capture_on_commit_callbacks, ops, data):
    chore = Chore.objects.create(team=ann.team, owner=ann.user, title="t")
    delayed = []  # Redis writes held back, then landed in any order
    for op in ops:
        if op == "fill":
            snapshot = ChoreTracking().snapshot_of(Chore.objects.get(pk=chore.pk))
            delayed.append(lambda s=snapshot: store_snapshot(s))
        else:
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                TRANSITIONS[op](chore.pk)
            delayed.extend(callbacks)
    versions = []
    for index in data.draw(st.permutations(range(len(delayed)))):
        delayed[index]()
        versions.append(stored_snapshot(chore.pk)["version"])
    assert versions == sorted(versions), "Redis went backwards"
    final = ChoreTracking().snapshot_of(Chore.objects.get(pk=chore.pk))
    stored = stored_snapshot(chore.pk)
    assert (stored["version"], stored["status"]) == (final.version, final.status)


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_to_redis_only(ann, django_assert_num_queries):
    chore = doing_chore(ann, percent=10)
    version = Chore.objects.get(pk=chore.pk).version
    with django_assert_num_queries(0):
        assert report_progress("chore", str(chore.pk), percent=75) is True
    assert Chore.objects.get(pk=chore.pk).version == version  # the row is untouched
    assert ann.poll(chore.pk).json()["progress"] == 75


@pytest.mark.django_db(transaction=True)
def test_a_late_progress_report_after_the_end_changes_nothing(ann):
    chore = doing_chore(ann, percent=10)
    services.move_chore(chore.pk, Chore.Status.DONE)
    assert report_progress("chore", str(chore.pk), percent=99) is False
    assert ann.poll(chore.pk).json()["status"] == "DONE"


@pytest.mark.django_db(transaction=True)
def test_a_deleted_job_is_a_404_at_the_next_poll(ann):
    chore = doing_chore(ann)
    assert ann.poll(chore.pk).status_code == 200
    Chore.objects.filter(pk=chore.pk).first().delete()
    assert ann.poll(chore.pk).status_code == 404
    assert stored_snapshot(chore.pk) is None
