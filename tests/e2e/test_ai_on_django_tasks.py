"""AI_JOB_RUNNER=tasks: a score sheet becomes a DONE report through Django's Tasks framework,
run by django-tasks-db's `db_worker` as a real process (no Celery worker runs here), and the
API and the job box answer as they do for Celery's runs: with zero SQL once it is done."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from django_tasks_db.models import DBTaskResult

from jobbox import conf
from process_tools import wait_until
from tests import workers
from tests.ai_helpers import poll, sheet_bytes, submit

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
# A worker starts and grades a small sheet within seconds; this bounds a broken test's wait.
JOB_TIMEOUT_SECONDS = 120
SHEET = [
    ["Student", "Korean", "Math", "English"],
    ["Kim", 90, 80, 70],
    ["Lee", 100, 95, 85],
    ["Park", 70, 80, 90],
]


def start_db_worker() -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": workers.test_database_url(),
           "REDIS_URL": conf.settings().REDIS_URL, "AI_JOB_RUNNER": "tasks"}
    return subprocess.Popen([sys.executable, "manage.py", "db_worker", "--interval", "0.05",
                             "--no-startup-delay"], cwd=ROOT, env=env)


@override_settings(AI_JOB_RUNNER="tasks")
def test_a_score_sheet_becomes_a_done_report_through_djangos_tasks_framework(
        alice, django_assert_num_queries):
    response = submit(alice, sheet_bytes(SHEET))
    assert response.status_code == 201
    job_id = response.json()["job_id"]
    (queued,) = DBTaskResult.objects.all()
    assert queued.task_path == "academy.ai.framework_tasks.run_ai_job"
    worker = start_db_worker()
    try:
        done = wait_until(lambda: poll(alice, job_id).json()["status"] == "DONE",
                          timeout_seconds=JOB_TIMEOUT_SECONDS, interval_seconds=0.1)
        assert done, "the db_worker did not finish the job"
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    queued.refresh_from_db()
    assert queued.status == "SUCCESSFUL"
    alice.client().get("/api/jobbox/")  # a box's first read builds its index
    with django_assert_num_queries(0):
        body = poll(alice, job_id).json()
        box = alice.client().get("/api/jobbox/").json()
    assert body["status"] == "DONE"
    assert body["result"]["report_url"].endswith(f"/api/ai/jobs/{job_id}/report/")
    assert [job["id"] for job in box["jobs"]] == [job_id]


def test_the_default_runner_sends_ai_jobs_to_celery_not_to_the_tasks_framework(alice):
    assert submit(alice, sheet_bytes(SHEET)).status_code == 201

    assert not DBTaskResult.objects.exists()
