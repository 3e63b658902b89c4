"""A new Django project adopts jobbox exactly as the tutorial says, from the wheel alone.

`django-admin startproject mysite` and `startapp exports` in a temporary folder, the library's
wheel installed into a fresh venv there, the code blocks of docs/tutorial.md applied
as they are (settings and wiring counted: at most 10 lines), migrated on a PostgreSQL
database of its own, served by `runserver`. Then, from outside the project's code:

- zero SQL per poll, counted by PostgreSQL itself: `pg_stat_database.sessions` counts the
  client connections opened to the project's database, and the project (Django's default
  CONN_MAX_AGE = 0) opens one in every request that runs any SQL and closes it at its end.
  PostgreSQL 15 publishes a backend's counters by the time it exits, so the count is read
  once no client backend of that database is left and it holds still (`settled_sessions`).
  A poll whose snapshot was deleted from Redis (one database fill) is the control: it moves
  the count by exactly one.
- a transition made by another process (a worker) is in the very next poll's answer.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection

from jobbox import conf
from process_tools import free_port, stop_process, wait_until
from tests.library_dist import ROOT, library_dist

# The tutorial page: every ```python block headed `# <path>.py` is applied to the project.
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"```python\n# (?P<path>\S+\.py)(?P<append>, at the end)?\n(?P<body>.*?)```",
                   re.S)
# The tutorial promises at most this many lines of settings and wiring.
MAX_WIRING_LINES = 10
POLLS = 50
# Installing Django, DRF, redis, psycopg... from the package index into a fresh venv.
INSTALL_TIMEOUT_SECONDS = 240
COMMAND_TIMEOUT_SECONDS = 120
SERVER_START_SECONDS = 60
# A backend's counters reach pg_stat_database by the time it exits: milliseconds here.
SETTLE_SECONDS = 15


@dataclass
class Project:
    folder: Path
    python: Path
    env: dict[str, str]
    database: str

    def manage(self, *args: str) -> str:
        done = subprocess.run([str(self.python), "manage.py", *args], cwd=self.folder,
                              env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS)
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def run(self, code: str) -> Any:
        """Project code run in a process of its own (as a worker would); prints JSON."""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])


def adoption_blocks() -> list[tuple[str, bool, str]]:
    page = TUTORIAL.read_text()
    return [(m["path"], bool(m["append"]), m["body"]) for m in BLOCK.finditer(page)]


def wiring_lines(blocks: list[tuple[str, bool, str]]) -> int:
    """Lines of code the tutorial adds to the project's settings and urls (not blank, not
    comment-only)."""
    return sum(
        1
        for path, _, body in blocks if path.startswith("mysite/")
        for line in body.splitlines() if line.strip() and not line.strip().startswith("#")
    )


def postgres() -> dict[str, Any]:
    db = connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        if os.environ.get("CI"):
            pytest.fail("CI runs the adoption test on PostgreSQL: set DATABASE_URL")
        pytest.skip("the adoption test needs PostgreSQL (DATABASE_URL)")
    return {"host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432),
            "user": db["USER"] or "postgres", "password": db["PASSWORD"] or None}


@pytest.fixture
def database() -> Iterator[tuple[str, dict[str, Any]]]:
    """A PostgreSQL database of the test's own, dropped after it."""
    server = postgres()
    name = f"adoption_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, server
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process of the new project: nothing of this repository's."""
    dropped = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


def create_project(tmp_path: Path, database: str, server: dict[str, Any]) -> Project:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This repository's pip installs into the fresh venv (saves bootstrapping one there);
    # psycopg is the project's database driver, not a dependency of jobbox.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    str(library_dist().wheel), "psycopg[binary]"],
                   check=True, timeout=INSTALL_TIMEOUT_SECONDS, capture_output=True)
    folder = tmp_path / "mysite"
    folder.mkdir()
    env = clean_env(REDIS_URL=conf.settings().REDIS_URL)
    subprocess.run([str(venv / "bin" / "django-admin"), "startproject", "mysite", str(folder)],
                   check=True, env=env)
    project = Project(folder=folder, python=python, env=env, database=database)
    project.manage("startapp", "exports")
    (folder / "mysite" / "settings.py").open("a").write(
        "\n# The adoption test's environment, not the tutorial's: its own PostgreSQL database.\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', "
        f"'NAME': {database!r}, 'HOST': {server['host']!r}, 'PORT': {server['port']}, "
        f"'USER': {server['user']!r}, 'PASSWORD': {server['password'] or ''!r}, "
        "'CONN_MAX_AGE': 0}}\n")
    return project


def apply_readme(project: Project) -> list[tuple[str, bool, str]]:
    blocks = adoption_blocks()
    for path, append, body in blocks:
        target = project.folder / path
        if append:
            target.write_text(target.read_text() + "\n" + body)
        else:
            target.write_text(body)
    return blocks


class Counters:
    """PostgreSQL's own count of client connections to one database, read from another."""

    def __init__(self, database: str, server: dict[str, Any]) -> None:
        self.database = database
        self.monitor = psycopg.connect(dbname="postgres", autocommit=True, **server)

    def _one(self, query: str) -> int:
        self.monitor.execute("SELECT pg_stat_clear_snapshot()")
        (value,) = self.monitor.execute(query, [self.database]).fetchone()
        return int(value or 0)

    def sessions(self) -> int:
        return self._one("SELECT sessions FROM pg_stat_database WHERE datname = %s")

    def live_clients(self) -> int:
        return self._one("SELECT count(*) FROM pg_stat_activity "
                         "WHERE datname = %s AND backend_type = 'client backend'")

    def settled_sessions(self) -> int:
        """The count once every client backend of the database has exited and published its
        counters (it holds still across two reads)."""
        readings: list[int] = []

        def settled() -> bool:
            if self.live_clients():
                return False
            readings.append(self.sessions())
            return len(readings) > 1 and readings[-1] == readings[-2]

        assert wait_until(settled, timeout_seconds=SETTLE_SECONDS, interval_seconds=0.2)
        return readings[-1]


class Server:
    def __init__(self, project: Project) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [str(project.python), "manage.py", "runserver", "--noreload",
             self.base.removeprefix("http://")],
            cwd=project.folder, env=project.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def get(self, path: str, token: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"Token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None

    def answering(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)


SETUP = """
import json
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from exports import services
user = User.objects.create_user("ada")
export = services.create_export(user.pk)
services.move_export(export.pk, "RUNNING")
services.export_progress(export.pk, 40)
print(json.dumps({"id": export.pk, "token": Token.objects.create(user=user).key}))
"""
FINISH = """
import json
from exports import services
print(json.dumps(services.move_export({id}, "DONE", file_url="exports/{id}.csv")))
"""
WHERE_JOBBOX_COMES_FROM = "import json, jobbox; print(json.dumps(jobbox.__file__))"


def test_a_new_project_adopts_jobbox_from_the_tutorial_and_polls_run_no_sql(tmp_path, database):
    name, server = database
    project = create_project(tmp_path, name, server)
    blocks = apply_readme(project)
    assert {path for path, _, _ in blocks} >= {
        "mysite/settings.py", "mysite/urls.py", "exports/models.py", "exports/tracking.py",
        "exports/apps.py", "exports/services.py"}
    assert wiring_lines(blocks) <= MAX_WIRING_LINES
    assert project.run(WHERE_JOBBOX_COMES_FROM).startswith(str(tmp_path / "venv"))
    assert "System check identified no issues" in project.manage("check")
    project.manage("makemigrations", "exports")
    project.manage("migrate")
    job = project.run(SETUP)
    path = f"/api/exports/{job['id']}/"

    app = Server(project)
    counters = Counters(name, server)
    try:
        assert wait_until(app.answering, timeout_seconds=SERVER_START_SECONDS,
                          interval_seconds=0.2)
        # Once per person: the principal is filled into Redis, the job box index built.
        status, body = app.get(path, job["token"])
        assert (status, body["status"], body["progress"]) == (200, "RUNNING", 40)
        assert app.get("/api/jobbox/", job["token"])[0] == 200

        before = counters.settled_sessions()
        for _ in range(POLLS):
            status, body = app.get(path, job["token"])
            assert (status, body["status"], body["progress"]) == (200, "RUNNING", 40)
            status, box = app.get("/api/jobbox/", job["token"])
            assert status == 200 and [j["id"] for j in box["jobs"]] == [str(job["id"])]
        assert counters.settled_sessions() - before == 0

        # The control: the same poll with the snapshot gone reads the database once, and
        # the counter sees it.
        redis.Redis.from_url(conf.settings().REDIS_URL).delete(f"export:{{{job['id']}}}:status")
        before = counters.settled_sessions()
        assert app.get(path, job["token"])[1]["status"] == "RUNNING"
        assert counters.settled_sessions() - before == 1

        # A worker's transition, then at once the next poll: the new state, no SQL.
        assert project.run(FINISH.replace("{id}", str(job["id"]))) is True
        before = counters.settled_sessions()
        status, body = app.get(path, job["token"])
        assert (status, body["status"], body["file_url"]) == (200, "DONE",
                                                              f"exports/{job['id']}.csv")
        assert counters.settled_sessions() - before == 0
    finally:
        app.stop()
        counters.monitor.close()
