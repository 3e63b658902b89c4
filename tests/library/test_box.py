"""GET /api/jobbox/: a person's running and recently finished jobs in one request, from
Redis without SQL once warm, and nobody else's."""

import pytest

from tests.library.chores import doing_chore, new_chore
from tests.library.conftest import make_person
from tests.library.toyapp import services
from tests.library.toyapp.models import Chore

pytestmark = pytest.mark.django_db(transaction=True)


def box_ids(person):
    response = person.box()
    assert response.status_code == 200
    return sorted(job["job"]["id"] if "job" in job else job["id"]
                  for job in response.json()["jobs"])


def test_the_box_holds_the_persons_running_and_finished_jobs(ann):
    running, finished = doing_chore(ann), new_chore(ann, title="Bins")
    services.move_chore(finished.pk, Chore.Status.DONE)
    assert box_ids(ann) == sorted([running.pk, finished.pk])


def test_a_warm_box_runs_no_sql(ann, django_assert_num_queries):
    doing_chore(ann)
    ann.box()
    with django_assert_num_queries(0):
        assert ann.box().status_code == 200


def test_the_box_shows_no_job_of_another_team_nor_of_a_teammate(ann, ben):
    mine = doing_chore(ann)
    doing_chore(ben)
    teammate = make_person("cas", team=ann.team)
    doing_chore(teammate)
    assert box_ids(ann) == [mine.pk]


def test_a_transition_shows_in_the_box_at_the_next_request(ann):
    chore = doing_chore(ann)
    ann.box()
    services.move_chore(chore.pk, Chore.Status.DROPPED, note="rain")
    [entry] = ann.box().json()["jobs"]
    assert "DROPPED" in str(entry) and "rain" in str(entry)


def test_the_box_needs_a_valid_token(ann):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/jobbox/").status_code == 401
