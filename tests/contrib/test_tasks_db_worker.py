"""Django's Tasks framework as tracked jobs with django-tasks-db's database backend and its
worker (`manage.py db_worker`) as a real process: polled with zero SQL while the task runs
and after it ends; on a Redis miss the backend is asked how the task stands."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from jobbox import conf
from jobbox.client import get_redis
from jobbox.contrib.tasks import KIND, enqueue_for
from tests.contrib import tasks

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
# A worker imports Django and reaches its first task within seconds here; a shared two-core
# machine can be slow, and the bound only limits how long a broken test hangs.
WORKER_WAIT_SECONDS = 120
POLL_PAUSE_SECONDS = 0.05


def database_url_for_processes() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_db_worker() -> subprocess.Popen:
    """`db_worker` in batch mode: runs every ready task of the database backend, then exits."""
    env = {**os.environ, "DATABASE_URL": database_url_for_processes(),
           "REDIS_URL": conf.settings().REDIS_URL,
           "DJANGO_SETTINGS_MODULE": "tests.contrib.settings",
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "django", "db_worker", "--backend", "database", "--batch",
         "--no-startup-delay", "--interval", "0.05"], cwd=ROOT, env=env)


def poll_until(client: Any, url: str, done: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if done(body):
            return body
        time.sleep(POLL_PAUSE_SECONDS)
    raise AssertionError(f"{url} never reached the awaited state; last: {body}")


def test_a_task_run_by_the_database_worker_is_polled_with_zero_sql_while_running_and_after(
        ann, tmp_path, django_assert_num_queries):
    gate = tmp_path / "gate"
    result = enqueue_for(tasks.half_then_wait.using(backend="database"),
                         tenant=ann.tenant, owner=ann.user.pk, args=[str(gate)])
    client, url = ann.client(), f"/api/tasks/{result.id}/"
    assert client.get(url).json()["status"] == "READY"
    worker = start_db_worker()
    try:
        poll_until(client, url, lambda body: (body["progress"] or {}).get("percent") == 50)
        client.get("/api/jobbox/")  # a box's first read builds its index (one bounded query)

        with django_assert_num_queries(0):
            running = client.get(url).json()
            box = client.get("/api/jobbox/").json()

        assert running["status"] == "RUNNING"
        assert running["progress"]["step_name"] == "waiting"
        assert [(job["kind"], job["id"]) for job in box["jobs"]] == [(KIND, result.id)]
        gate.touch()
        assert worker.wait(timeout=WORKER_WAIT_SECONDS) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    with django_assert_num_queries(0):
        finished = client.get(url).json()
    assert (finished["status"], finished["return_value"]) == ("SUCCESSFUL", "released")


def test_a_finish_the_worker_did_not_record_is_read_through_the_backend_on_a_miss(ann):
    result = enqueue_for(tasks.count_to.using(backend="database"),
                         tenant=ann.tenant, owner=ann.user.pk, args=[1])
    # A worker that died after the backend's write and before jobbox's: the backend's row
    # says SUCCESSFUL, jobbox's row and Redis still say READY.
    backend_row = DBTaskResult.objects.get(id=result.id)
    backend_row.claim("worker-that-died")
    backend_row.set_successful({"counted": 1})
    get_redis().flushdb()

    body = ann.client().get(f"/api/tasks/{result.id}/").json()

    assert body["status"] == "SUCCESSFUL"
    assert body["finished_at"] is not None
