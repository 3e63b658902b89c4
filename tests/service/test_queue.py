"""Queue sends happen after commit, and a dead broker does not fail the committed request."""

import pytest
from celery import Celery, shared_task
from django.db import transaction

from academy.celery import app
from academy.queue import send_on_commit

sent: list[int] = []


@shared_task(name="tests.record_send")
def record_send(n: int) -> None:
    sent.append(n)


@pytest.fixture
def eager():
    app.conf.task_always_eager = True
    sent.clear()
    yield
    app.conf.task_always_eager = False


@pytest.mark.django_db(transaction=True)
def test_a_send_waits_for_commit_and_a_rollback_sends_nothing(eager):
    with transaction.atomic():
        send_on_commit(record_send, 1)
        assert sent == []
    assert sent == [1]
    with pytest.raises(RuntimeError), transaction.atomic():
        send_on_commit(record_send, 2)
        raise RuntimeError
    assert sent == [1]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_is_logged_not_raised(caplog):
    # Not the current app: shared tasks elsewhere must keep sending to the real broker.
    dead = Celery("dead-broker", broker="redis://127.0.0.1:1/0", set_as_current=False)
    dead.conf.task_publish_retry = False
    dead.conf.broker_connection_retry = False
    dead.conf.broker_connection_timeout = 0.5

    @dead.task(name="tests.never_sent")
    def never_sent() -> None:
        pass

    send_on_commit(never_sent)  # outside a transaction: sent (and failing) at once
    assert "broker is unavailable" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_by_name_reaches_the_broker_without_importing_its_module(monkeypatch):
    sent_by_name = []
    monkeypatch.setattr(app, "send_task",
                        lambda name, args, kwargs: sent_by_name.append((name, args)))
    with transaction.atomic():
        send_on_commit("videos.transcode_video", 7)
        assert sent_by_name == []
    assert sent_by_name == [("videos.transcode_video", (7,))]
