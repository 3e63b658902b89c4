"""Redis stopped (a private redis-server of the test's own): polls and the box are answered
from the database with the same bodies, tenant walls hold, and transitions still commit."""

import pytest

from jobbox import report_progress
from jobbox.client import RedisUnavailable
from tests.faults import private_redis_server
from tests.library.chores import doing_chore, new_chore
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]


@pytest.fixture
def private_redis():
    with private_redis_server() as server:
        yield server


def test_polls_are_answered_from_the_database_while_redis_is_stopped(ann, ben, private_redis):
    chore = new_chore(ann)
    services.move_chore(chore.pk, Chore.Status.DONE, note="dry")
    while_up = ann.poll(chore.pk)
    private_redis.stop()
    while_down = ann.poll(chore.pk)
    assert while_down.status_code == while_up.status_code == 200
    assert while_down.content == while_up.content
    assert ben.poll(chore.pk).status_code == 404  # tenant walls hold on the fallback too
    assert ben.poll(chore.pk).content == ben.poll(999_999).content


def test_the_box_is_answered_from_the_database_while_redis_is_stopped(ann, private_redis):
    chore = doing_chore(ann)
    private_redis.stop()
    response = ann.box()
    assert response.status_code == 200
    assert str(chore.pk) in response.content.decode()


def test_transitions_commit_and_progress_is_refused_while_redis_is_stopped(ann, private_redis):
    chore = new_chore(ann)
    private_redis.stop()
    services.move_chore(chore.pk, Chore.Status.DOING)
    assert Chore.objects.get(pk=chore.pk).status == "DOING"
    with pytest.raises(RedisUnavailable):
        report_progress("chore", str(chore.pk), percent=10)
    assert ann.poll(chore.pk).json()["status"] == "DOING"
