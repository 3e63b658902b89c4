"""A tracked job's status view in a project that is not the service: zero SQL on a hot poll
(authentication included), one database read on a miss, one representation on both paths,
and tenant walls that answer another team's job exactly like a missing one."""

import pytest
from rest_framework.test import APIClient

from tests.library.chores import doing_chore, forget_snapshot, new_chore
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_hot_poll_of_a_running_job_runs_no_sql(ann, django_assert_num_queries):
    chore = doing_chore(ann, percent=40)
    ann.poll(chore.pk)  # the first request fills the token's principal cache
    with django_assert_num_queries(0):
        response = ann.poll(chore.pk)
    assert response.status_code == 200
    assert response.json()["status"] == "DOING"
    assert response.json()["progress"] == 40


@pytest.mark.parametrize("end", [Chore.Status.DONE, Chore.Status.DROPPED])
def test_a_hot_poll_of_a_recently_finished_job_runs_no_sql(ann, end, django_assert_num_queries):
    chore = doing_chore(ann)
    services.move_chore(chore.pk, end, note="finished")
    ann.poll(chore.pk)
    with django_assert_num_queries(0):
        body = ann.poll(chore.pk).json()
    assert body["status"] == end
    assert body["note"] == "finished"


def test_a_new_job_is_in_redis_from_its_first_poll(ann, django_assert_num_queries):
    chore = new_chore(ann)
    ann.client().get("/api/jobbox/")  # fills the principal cache, not the chore
    with django_assert_num_queries(0):
        assert ann.poll(chore.pk).json()["status"] == "TODO"


def test_a_cold_snapshot_costs_one_database_read_then_none(ann, django_assert_num_queries):
    chore = doing_chore(ann)
    ann.poll(chore.pk)
    forget_snapshot(chore.pk)
    with django_assert_num_queries(1):
        cold = ann.poll(chore.pk)
    with django_assert_num_queries(0):
        warm = ann.poll(chore.pk)
    assert cold.status_code == warm.status_code == 200
    assert cold.content == warm.content


def test_the_redis_read_and_the_database_read_are_the_same_bytes_after_every_step(ann):
    chore = new_chore(ann, title="Laundry: 빨래")
    steps = [
        lambda: None,
        lambda: services.move_chore(chore.pk, Chore.Status.DOING),
        lambda: services.move_chore(chore.pk, Chore.Status.DROPPED, note="no soap: 비누 없음"),
        lambda: services.move_chore(chore.pk, Chore.Status.TODO),
        lambda: services.move_chore(chore.pk, Chore.Status.DONE, note="dry"),
    ]
    for step in steps:
        step()
        from_redis = ann.poll(chore.pk)
        forget_snapshot(chore.pk)
        from_database = ann.poll(chore.pk)
        assert from_redis.status_code == from_database.status_code == 200
        assert from_redis.content == from_database.content


def test_another_teams_job_is_the_same_404_as_a_missing_one_on_both_paths(ann, ben):
    chore = doing_chore(ann)
    assert ann.poll(chore.pk).status_code == 200  # cached now
    hit = ben.poll(chore.pk)
    forget_snapshot(chore.pk)
    miss = ben.poll(chore.pk)
    missing = ben.poll(999_999)
    assert hit.status_code == miss.status_code == missing.status_code == 404
    assert hit.content == miss.content == missing.content
    assert b"Dishes" not in hit.content


@pytest.mark.parametrize("raw_id", ["abc", "0", "-1", "1.5", "%EF%BC%91", "9" * 40, "1:2"])
def test_malformed_ids_answer_the_same_404_never_a_500(ann, raw_id):
    response = ann.poll(raw_id)
    assert response.status_code == 404
    assert response.content == ann.poll(999_999).content


def test_a_poll_without_a_valid_token_is_refused(ann):
    chore = doing_chore(ann)
    assert APIClient().get(f"/api/chores/{chore.pk}/").status_code == 401
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert stranger.get(f"/api/chores/{chore.pk}/").status_code == 401
