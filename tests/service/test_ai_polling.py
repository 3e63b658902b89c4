"""GET /api/ai/jobs/<job_id>/: zero SQL on hits (the result too), one read on a miss, one JSON
shape on both paths, tenant walls, malformed ids, Redis stopped."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from academy.ai import services
from academy.ai.models import AIJobModel
from process_tools.redis_server import RedisServer
from tests.ai_helpers import (
    done_job,
    new_job,
    poll,
    processing_job,
    status_key,
)
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db(transaction=True)

# The seed's fields, then what a person's job card shows: the file's name and the times.
FIELDS = ["job_id", "job_type", "status", "progress", "error_message", "result",
          "file_name", "created_at", "updated_at", "attempt", "previous_attempts",
          "eta_seconds"]
RESULT = {"students": [{"student": "김민수", "total": 271, "rank": 1}], "summary": {"rows": 1}}


def test_poll_of_pending_job_runs_no_sql(alice, django_assert_num_queries):
    job_id = new_job(alice)
    poll(alice, job_id)  # the first request fills the token's principal cache
    with django_assert_num_queries(0):
        response = poll(alice, job_id)
    assert response.status_code == 200
    body = response.json()
    assert body == {"job_id": job_id, "job_type": "excel.grade_report", "status": "PENDING",
                    "progress": None, "error_message": None, "result": None, "file_name": None,
                    "created_at": body["created_at"], "updated_at": body["updated_at"],
                    "attempt": 1, "previous_attempts": [], "eta_seconds": None}
    row_ = AIJobModel.objects.get(job_id=job_id)
    assert (body["created_at"], body["updated_at"]) == (row_.created_at.isoformat(),
                                                        row_.updated_at.isoformat())


def test_poll_of_processing_job_runs_no_sql_and_shows_named_progress(
        alice, django_assert_num_queries):
    job_id = processing_job(alice)
    poll(alice, job_id)
    with django_assert_num_queries(0):
        body = poll(alice, job_id).json()
    assert list(body) == FIELDS
    assert body["status"] == "PROCESSING"
    assert body["progress"] == {"percent": 40, "step_index": 2, "step_total": 5,
                                "step_name": "validate rows", "step_percent": 50}


def test_poll_of_done_job_with_its_result_runs_no_sql(alice, django_assert_num_queries):
    job_id = done_job(alice, RESULT)
    poll(alice, job_id)
    with django_assert_num_queries(0):
        body = poll(alice, job_id).json()
    assert body["status"] == "DONE"
    assert body["result"] == RESULT
    assert body["progress"] is None  # the seed: a finished job has no progress


def test_poll_of_failed_job_runs_no_sql(alice, django_assert_num_queries):
    job_id = processing_job(alice)
    services.ai_job_fail(job_id=job_id, error_message="No valid student rows (3 bad).")
    poll(alice, job_id)
    with django_assert_num_queries(0):
        body = poll(alice, job_id).json()
    assert (body["status"], body["error_message"], body["result"]) == (
        "FAILED", "No valid student rows (3 bad).", None)


def test_cold_cache_costs_one_database_read_then_zero(alice, django_assert_num_queries):
    job_id = done_job(alice, RESULT)
    poll(alice, job_id)
    outside_redis().delete(status_key(job_id))
    with django_assert_num_queries(1):
        cold = poll(alice, job_id)
    with django_assert_num_queries(0):
        warm = poll(alice, job_id)
    assert cold.status_code == warm.status_code == 200
    assert cold.content == warm.content
    assert cold.json()["result"] == RESULT


def test_redis_and_database_render_identical_json_after_every_transition(alice):
    job_id = new_job(alice)
    steps = [
        lambda: None,  # PENDING, as created
        # w1's lease runs out at once: w2's start below is a dead worker's rerun.
        lambda: services.ai_job_start(job_id=job_id, worker_id="w1", lease_seconds=0),
        lambda: services.ai_job_report_progress(job_id=job_id, percent=20, step_index=1,
                                                step_total=5, step_name="read sheet"),
        lambda: services.ai_job_start(job_id=job_id, worker_id="w2"),  # a dead worker's rerun
        lambda: services.ai_job_fail(job_id=job_id, error_message="실패: 한국어 message"),
    ]
    other = new_job(alice)
    steps_done = [
        lambda: services.ai_job_start(job_id=other, worker_id="w1"),
        lambda: services.ai_job_complete(job_id=other, result=RESULT),
    ]
    for target, step in [(job_id, s) for s in steps] + [(other, s) for s in steps_done]:
        step()
        from_redis = poll(alice, target)
        outside_redis().delete(status_key(target))
        from_database = poll(alice, target)
        assert from_redis.status_code == from_database.status_code == 200
        # Progress lives only in Redis; the read-through fill keeps it, so even that agrees.
        assert from_redis.content == from_database.content


def test_another_tenants_job_is_the_same_404_as_a_missing_one_on_both_paths(alice, bob):
    job_id = done_job(alice, RESULT)
    assert poll(alice, job_id).status_code == 200  # now cached
    hit = poll(bob, job_id)
    outside_redis().delete(status_key(job_id))
    miss = poll(bob, job_id)
    missing = poll(bob, "A" * 32)
    assert hit.status_code == miss.status_code == missing.status_code == 404
    assert hit.content == miss.content == missing.content
    assert b"alpha" not in hit.content and "김민수".encode() not in hit.content


@pytest.mark.parametrize("raw_id", [
    "abc", "0", "-1", "a" * 65, "%7Bab%7D" * 3, "a:b" * 8, "%EF%BC%91" * 16,
    "a%20b" * 8, "%3Cscript%3E" * 3, "a.b" * 8, "A" * 15,
])
def test_malformed_ids_answer_404_never_500(alice, raw_id):
    response = poll(alice, raw_id)
    assert response.status_code == 404
    assert response.content == poll(alice, "A" * 32).content


def test_unauthenticated_poll_is_refused(alice):
    job_id = processing_job(alice)
    assert APIClient().get(f"/api/ai/jobs/{job_id}/").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad.get(f"/api/ai/jobs/{job_id}/").status_code == 401


@pytest.mark.fault
def test_polls_are_answered_from_the_database_while_redis_is_stopped(alice, bob):
    with RedisServer() as server, override_settings(JOBBOX={
        "REDIS_URL": server.url,
        "TENANT_RESOLVER": "academy.tenants.services.tenant_id_for_user",
        "PRINCIPAL_MODELS": ["tenants.Membership"],
    }):
        job_id = done_job(alice, RESULT)
        running = processing_job(alice)
        while_up = poll(alice, job_id)
        assert while_up.status_code == 200
        server.stop()
        while_down = poll(alice, job_id)
        assert while_down.status_code == 200
        assert while_down.content == while_up.content
        assert poll(alice, running).json()["status"] == "PROCESSING"
        assert poll(bob, job_id).status_code == 404  # tenant walls hold on the fallback too
        # Transitions still commit; Redis catches up when it is back (or on the next fill).
        assert services.ai_job_fail(job_id=running, error_message="stopped") == (True, "ok")
        assert poll(alice, running).json()["status"] == "FAILED"
