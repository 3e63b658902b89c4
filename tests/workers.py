"""Real Celery worker processes on the test database and the test Redis."""

import os
import subprocess
import sys
import uuid
from urllib.parse import quote

from academy.celery import app as celery_app
from jobbox import conf
from process_tools import stop_process, wait_until

# A worker process imports Django and connects to the broker in a few seconds here.
WORKER_START_TIMEOUT_SECONDS = 60
# A worker's warm shutdown lets its current task finish: room for one short test task.
WORKER_STOP_GRACE_SECONDS = 20


def test_database_url() -> str:
    """A DATABASE_URL for the database the tests run on, for processes they start."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _answering(name: str) -> bool:
    return bool(celery_app.control.ping(destination=[name], timeout=0.5))


def start_worker(*extra_args: str) -> subprocess.Popen:
    """A real `celery worker` process on the test database and the test Redis; waits until up."""
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "DATABASE_URL": test_database_url(),
           "REDIS_URL": conf.settings().REDIS_URL, "CELERY_BROKER_URL": celery_app.conf.broker_url,
           "REDIS_CLUSTER": "1" if conf.settings().REDIS_CLUSTER else ""}
    # A session of its own: should it have to be killed, its pool and an embedded beat
    # (`--beat`) go with it instead of living on, orphaned, on the test Redis.
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "academy", "worker", "--loglevel", "WARNING",
         "--hostname", name, "--without-gossip", "--without-mingle", *extra_args],
        env=env, start_new_session=True,
    )
    # True once it answers a ping; "exited" ends the wait early.
    outcome = wait_until(lambda: "exited" if process.poll() is not None else _answering(name),
                         timeout_seconds=WORKER_START_TIMEOUT_SECONDS)
    if outcome is True:
        return process
    stop_process(process, grace_seconds=0)
    raise RuntimeError(f"the Celery worker did not start ({outcome or 'no answer'})")


def stop_worker(process: subprocess.Popen) -> None:
    stop_process(process, grace_seconds=WORKER_STOP_GRACE_SECONDS)
