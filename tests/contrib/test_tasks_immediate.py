"""Django's Tasks framework as tracked jobs, with the immediate backend (the task runs inside
`enqueue`): transitions through jobbox's after-commit path, progress by the result's id,
zero SQL reads after, tenant walls, the owner's box."""


import pytest
from django.db import transaction

from jobbox import conf, keys
from jobbox.client import get_redis
from jobbox.contrib.tasks import KIND, enqueue_for
from jobbox.contrib.tasks.models import TrackedTask
from tests.contrib import tasks
from tests.redis_peek import snapshot_document, streaming

pytestmark = pytest.mark.django_db(transaction=True)


def stored(result_id: str) -> dict | None:
    raw = get_redis().get(keys.status_key("task", result_id))
    return snapshot_document(raw)


def test_a_task_enqueued_for_a_person_is_recorded_with_its_owner_and_tenant(ann):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[3])

    row = TrackedTask.objects.get(result_id=result.id)
    assert (row.tenant_id, row.owner_id) == (ann.tenant, str(ann.user.pk))
    assert row.task_path == "tests.contrib.tasks.count_to"
    # Enqueued, started, finished: three transitions, each one version.
    assert (row.status, row.version) == ("SUCCESSFUL", 3)
    assert row.return_value == {"counted": 3, "recorded": [True, True, True]}


def test_a_task_enqueued_without_an_owner_is_not_tracked(ann):
    result = tasks.count_to.enqueue(2)

    assert not TrackedTask.objects.filter(result_id=result.id).exists()
    assert stored(result.id) is None


def test_a_finished_task_is_read_with_zero_sql_for_the_terminal_ttl(
        ann, django_assert_num_queries):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[2])
    client = ann.client()
    client.get(f"/api/tasks/{result.id}/")  # the first poll caches who the token names

    with django_assert_num_queries(0):
        response = client.get(f"/api/tasks/{result.id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SUCCESSFUL"
    assert body["return_value"] == {"counted": 2, "recorded": [True, True]}
    assert body["progress"] is None  # a finished task shows no progress bar
    ttl = get_redis().ttl(keys.status_key("task", result.id))
    assert conf.settings().TERMINAL_TTL_SECONDS - 60 < ttl <= conf.settings().TERMINAL_TTL_SECONDS


def test_a_failed_task_names_its_exception_class_and_never_its_message(ann):
    result = enqueue_for(tasks.fail_with_secret, tenant=ann.tenant, owner=ann.user.pk)

    response = ann.client().get(f"/api/tasks/{result.id}/")

    assert response.json()["status"] == "FAILED"
    assert response.json()["error_class"] == "builtins.ValueError"
    assert b"hunter2" not in response.content


def test_another_tenants_task_is_the_same_404_as_a_missing_one(ann, ben):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])

    theirs = ben.client().get(f"/api/tasks/{result.id}/")
    missing = ben.client().get("/api/tasks/no-such-task-result/")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


def test_a_malformed_result_id_is_a_404(ann):
    assert ann.client().get("/api/tasks/" + "x" * 65 + "/").status_code == 404


def test_a_task_poll_needs_authentication(ann):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])

    from rest_framework.test import APIClient

    assert APIClient().get(f"/api/tasks/{result.id}/").status_code in (401, 403)


def test_a_task_is_in_its_owners_job_box_and_in_nobody_elses(ann, ben):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])

    mine = ann.client().get("/api/jobbox/").json()
    theirs = ben.client().get("/api/jobbox/").json()

    assert [(job["kind"], job["id"]) for job in mine["jobs"]] == [(KIND, result.id)]
    assert theirs["jobs"] == []


def test_a_rolled_back_enqueue_leaves_nothing_in_redis(ann):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])
        raise RuntimeError("rolled back")

    assert not TrackedTask.objects.filter(result_id=result.id).exists()
    assert stored(result.id) is None


def test_a_redis_miss_is_filled_from_the_row(ann):
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])
    get_redis().flushdb()

    response = ann.client().get(f"/api/tasks/{result.id}/")

    assert response.json()["status"] == "SUCCESSFUL"
    assert stored(result.id)["version"] == 3


def test_each_transition_is_announced_in_order_to_its_owners_stream_only(ann, ben):
    for person in (ann, ben):
        streaming(person.tenant, person.user.pk)
    result = enqueue_for(tasks.count_to, tenant=ann.tenant, owner=ann.user.pk, args=[1])

    def announced(person) -> list[str]:
        history = get_redis().xrange(keys.owner_events_key(person.tenant, str(person.user.pk)))
        return [fields[b"st"].decode() for _, fields in history
                if fields[b"e"] == b"changed" and fields[b"i"] == result.id.encode()]

    # What the owner's open streams deliver, and what a reconnecting one resumes from.
    assert announced(ann) == ["READY", "RUNNING", "SUCCESSFUL"]
    assert announced(ben) == []


def test_a_task_enqueued_from_inside_a_tracked_one_is_not_tracked_for_its_owner(ann):
    result = enqueue_for(tasks.enqueue_a_helper, tenant=ann.tenant, owner=ann.user.pk)

    helper_id = TrackedTask.objects.get(result_id=result.id).return_value
    assert not TrackedTask.objects.filter(result_id=helper_id).exists()
