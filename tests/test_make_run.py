"""`make run` as a newcomer meets it: one instance per folder (a second one refuses before it
prints a secret or touches a file, and names the running one's address), a metrics token to
look at `/metrics` with, and commands in another shell on the running one's Redis or on none.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import conftest
from academy import embedded
from academy.embedded import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parent.parent
# `make run` migrates, creates the demo and starts uvicorn and a worker: on a busy 2-core
# machine that takes tens of seconds (not a speed test).
START_TIMEOUT_SECONDS = 120
SECRET_WORDS = ("password", "token")


def run_env(folder: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "METRICS_TOKEN")}
    return {**env, "JOBBOX_RUN_DIR": str(folder), "PORT": str(port),
            "DATABASE_URL": conftest.test_database_url(), "PYTHONUNBUFFERED": "1", **extra}


def run_once(folder: Path, port: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "academy.run"], cwd=BASE_DIR,
                          env=run_env(folder, port), capture_output=True, text=True,
                          timeout=START_TIMEOUT_SECONDS)


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """The instance's own files (Celery beat rewrites its schedule files as it likes)."""
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.name.startswith("celerybeat-schedule")}


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no {prefix!r} line: {''.join(lines)}")


def wait_until_serving(base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)


def get(url: str, **headers: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


def settings_redis_url(folder: Path) -> subprocess.CompletedProcess:
    """What a `manage.py` command in another shell (no REDIS_URL) would use."""
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
            "'academy.settings'); django.setup(); from django.conf import settings; "
            "print(settings.REDIS_URL)")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True,
                          text=True, env={**env, "JOBBOX_RUN_DIR": str(folder)}, timeout=60)


def test_a_running_instance_has_a_metrics_token_and_a_second_one_leaves_it_alone(tmp_path):
    folder, port = tmp_path / "run", free_port()
    base = f"http://127.0.0.1:{port}"
    first = subprocess.Popen([sys.executable, "-m", "academy.run"], cwd=BASE_DIR,
                             env=run_env(folder, port, MEDIA_ROOT=str(tmp_path / "media")),
                             stdout=subprocess.PIPE, text=True)
    try:
        banner = "".join(wait_for_line(first, "Metrics:"))
        wait_until_serving(base)
        token = (folder / "metrics.token").read_text()
        assert f"Authorization: Bearer {token}' {base}/metrics" in banner
        assert (folder / "metrics.token").stat().st_mode & 0o777 == 0o600
        assert get(f"{base}/metrics", Authorization=f"Bearer {token}") == 200
        assert get(f"{base}/metrics") == 401

        before = snapshot_files(folder)
        assert sorted(before) == ["metrics.token", "redis.url", "run.json", "run.lock"]
        second = run_once(folder, free_port())
        assert second.returncode == 1
        assert f"already running here at {base}" in second.stderr
        assert not any(word in second.stdout + second.stderr for word in SECRET_WORDS)
        assert snapshot_files(folder) == before  # the running one's redis.url and state kept
        assert get(f"{base}/healthz") == 200

        other_shell = settings_redis_url(folder)
        assert other_shell.stdout.strip() == (folder / "redis.url").read_text()
        assert other_shell.stdout.strip() != embedded.LOCAL_REDIS_URL
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
        first.stdout.close()
    # It removes what it created, and only that: the token is kept for the next run.
    assert sorted(snapshot_files(folder)) == ["metrics.token", "run.lock"]
    assert settings_redis_url(folder).stdout.strip() == embedded.LOCAL_REDIS_URL


def test_a_busy_port_is_refused_before_anything_secret_is_printed(tmp_path):
    folder = tmp_path / "run"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_once(folder, port)
    assert result.returncode == 1
    assert f"Port {port} is in use" in result.stderr
    assert not any(word in result.stdout + result.stderr for word in SECRET_WORDS)
    assert [p.name for p in folder.iterdir()] == ["run.lock"]  # no Redis was started


def test_commands_never_guess_a_redis_while_an_instance_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("JOBBOX_RUN_DIR", raising=False)
    assert embedded.redis_url(tmp_path) == embedded.LOCAL_REDIS_URL  # nothing runs here
    lock = embedded.hold_run_lock(tmp_path)
    try:
        assert embedded.hold_run_lock(tmp_path) is None  # one instance per folder
        with pytest.raises(embedded.RunningInstanceUnclear, match="set REDIS_URL"):
            embedded.redis_url(tmp_path)  # running, but where its Redis is is unknown
        embedded.write_state(tmp_path, pid=1, address="x", redis_url="redis://h:1/2")
        assert embedded.redis_url(tmp_path) == "redis://h:1/2"
        monkeypatch.setenv("REDIS_URL", "redis://chosen:3/4")
        assert embedded.redis_url(tmp_path) == "redis://chosen:3/4"  # an explicit choice wins
    finally:
        lock.close()
    monkeypatch.delenv("REDIS_URL")
    assert not embedded.running(tmp_path)
