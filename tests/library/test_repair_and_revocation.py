"""What keeps Redis honest over time on the toy model: the reconciler restores a snapshot a
lost write left behind, and a revoked token or user is refused at the next poll although
the principal was cached."""

import pytest
from rest_framework.authtoken.models import Token

from jobbox import invalidate_token, invalidate_user, reconcile_recent
from tests.library.chores import doing_chore, forget_snapshot, stored_snapshot
from tests.library.toyapp.models import Chore

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_reconciler_restores_a_snapshot_redis_lost(ann):
    chore = doing_chore(ann)
    # A transition whose after-commit write to Redis was lost (a crash between the two).
    Chore.objects.filter(pk=chore.pk).update(status=Chore.Status.DONE, version=chore.version + 1)
    forget_snapshot(chore.pk)
    reconcile_recent()
    stored = stored_snapshot(chore.pk)
    assert (stored["status"], stored["version"]) == ("DONE", chore.version + 1)


def test_the_reconciler_leaves_a_newer_snapshot_alone(ann):
    chore = doing_chore(ann)
    before = stored_snapshot(chore.pk)
    reconcile_recent()
    assert stored_snapshot(chore.pk) == before


def test_a_deleted_token_is_refused_at_the_next_poll_once_invalidated(ann):
    chore = doing_chore(ann)
    assert ann.poll(chore.pk).status_code == 200  # the principal is cached now
    Token.objects.filter(key=ann.token).delete()
    invalidate_token(ann.token)
    assert ann.poll(chore.pk).status_code == 401


def test_a_deactivated_user_is_refused_at_the_next_poll_once_invalidated(ann):
    chore = doing_chore(ann)
    assert ann.poll(chore.pk).status_code == 200
    ann.user.is_active = False
    ann.user.save(update_fields=["is_active"])
    invalidate_user(ann.user.pk)
    assert ann.poll(chore.pk).status_code == 401
