"""`make run` as a newcomer meets it: one instance per folder (a second one refuses before it
prints a secret or touches a file, and names the running one's address), a metrics token to
look at `/metrics` with, and commands in another shell on the running one's Redis or on none.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import pytest

from academy import embedded, run
from process_tools import free_port, wait_until
from tests import workers
from tests.asgi_server import answering

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]
# `make run` migrates, creates the demo and starts uvicorn and a worker: on a busy 2-core
# machine that takes tens of seconds (not a speed test).
START_TIMEOUT_SECONDS = 120
SECRET_WORDS = ("password", "token")


def run_env(folder: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "METRICS_TOKEN")}
    return {**env, "JOBBOX_RUN_DIR": str(folder), "PORT": str(port),
            "DATABASE_URL": workers.test_database_url(), "PYTHONUNBUFFERED": "1", **extra}


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
    assert wait_until(lambda: answering(base), timeout_seconds=START_TIMEOUT_SECONDS,
                      interval_seconds=0.2), "the service did not start"


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


# /proc/net/tcp's state code for TIME_WAIT.
TIME_WAIT_STATE = "06"


def time_wait_on(port: int) -> bool:
    """True while a closed connection on the local `port` sits in TIME_WAIT (IPv4)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(row.split()[1].endswith(f":{port:04X}") and row.split()[3] == TIME_WAIT_STATE
               for row in rows)


def leave_time_wait_on_a_port() -> int:
    """A port whose server closed a connection first and stopped listening: what a stopped
    `make run` leaves after serving a browser."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as browser:
            served, _ = listener.accept()
            served.close()  # the server side closes first: its end goes to TIME_WAIT
            browser.recv(1)
    return port


def test_a_port_is_in_use_only_while_something_listens_on_it():
    port = leave_time_wait_on_a_port()
    assert time_wait_on(port)
    assert run._port_free(port)  # closed connections are no program
    with socket.socket() as listening:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(("127.0.0.1", port))
        listening.listen()
        assert not run._port_free(port)


def start_in_a_terminal(folder: Path, port: int, stderr: IO[str]) -> subprocess.Popen:
    """`make run` in a session of its own, so Ctrl-C can reach it and its children together
    as a terminal's does."""
    return subprocess.Popen([sys.executable, "-m", "academy.run"], cwd=BASE_DIR,
                            env=run_env(folder, port), stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True, start_new_session=True)


def press_ctrl_c(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=START_TIMEOUT_SECONDS)


def test_ctrl_c_with_a_page_open_says_goodbye_and_a_restart_at_once_starts(tmp_path):
    folder, port = tmp_path / "run", free_port()
    base = f"http://127.0.0.1:{port}"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with open(first_log, "w") as stderr:
        first = start_in_a_terminal(folder, port, stderr)
        try:
            wait_until_serving(base)
            page = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            page.request("GET", "/healthz")  # a keep-alive connection, as a browser holds
            page.getresponse().read()
            assert press_ctrl_c(first) == 0
            assert run._port_free(port)  # the server stopped with it
            page.close()
        finally:
            if first.poll() is None:
                first.kill()
    log = first_log.read_text()
    assert log.count(run.GOODBYE) == 1
    assert "Traceback" not in log
    assert time_wait_on(port)  # the server closed the page's connection: the case to prove

    with open(second_log, "w") as stderr:
        second = start_in_a_terminal(folder, port, stderr)
        try:
            wait_until_serving(base)
            assert press_ctrl_c(second) == 0
        finally:
            if second.poll() is None:
                second.kill()
    assert "in use" not in second_log.read_text()
