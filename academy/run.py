"""`make run`: the whole service on the embedded default, stopped together by Ctrl-C.

Starts a private Redis (unless `REDIS_URL` is set), migrates the database (SQLite under
.run/ unless `DATABASE_URL` is set), creates the demo tenants, then serves the API at
http://127.0.0.1:$PORT (8000), runs the Celery worker (with beat) and prints tokens, a
metrics token and curl lines to try. With AI_JOB_RUNNER=tasks, AI jobs run on Django's Tasks
framework instead, and django-tasks-db's `db_worker` runs beside the Celery worker.

One instance per folder: it holds `.run/run.lock` while it runs and describes itself in
`.run/run.json` (address, Redis), so a second `make run` refuses before it prints anything
secret or touches a file, and `manage.py` in another shell finds the running one's Redis
(academy.embedded.redis_url). On its way out it removes only the files it created.
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from academy import metrics_dir
from academy.embedded import (
    RUN_DIR_VARIABLE,
    URL_FILE_NAME,
    RedisServer,
    hold_run_lock,
    read_state,
    write_state,
)
from process_tools import stop_processes

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
METRICS_TOKEN_FILE_NAME = "metrics.token"
# The proxies whose forwarding headers name the client (uvicorn's own variable): unset, none.
FORWARDED_ALLOW_IPS_VARIABLE = "FORWARDED_ALLOW_IPS"
# uvicorn's own default, stated: a browser reuses a connection within seconds or not at all.
KEEP_ALIVE_TIMEOUT_SECONDS = 5
# Open connections one worker serves at once (each open stream holds one): 2,000 is 250
# people with 8 tabs each, about 60 MB of stream state, and far below the 20,000 file
# descriptors a worker may hold here, so the cap answers 503 before the process runs out
# (HTTP_CONNECTIONS_PER_WORKER moves it).
CONNECTIONS_PER_WORKER = 2000
CONNECTIONS_VARIABLE = "HTTP_CONNECTIONS_PER_WORKER"
# 32 random bytes: as strong as the session secret, and kept between runs so a scraper set up
# once keeps working.
METRICS_TOKEN_BYTES = 32
# The one line Ctrl-C ends with (exit status 0: stopping is what was asked for).
GOODBYE = "Jobbox stopped. Goodbye."
# uvicorn closes open streams within its 3 s graceful shutdown; a worker finishing a task on
# its warm shutdown gets the rest. Past this, the children are killed: none outlives `make run`.
CHILDREN_STOP_GRACE_SECONDS = 20.0
# How often an idle db_worker looks for a queued task (one indexed query): a sheet waits at
# most this long before grading starts, and an idle service costs 2 queries a second.
TASKS_WORKER_INTERVAL_SECONDS = 0.5


def run_dir() -> Path:
    """`.run/` beside the code; JOBBOX_RUN_DIR moves the lock and state (for tests)."""
    return Path(os.environ.get(RUN_DIR_VARIABLE) or BASE_DIR / ".run")


def manage(*args: str) -> str:
    return subprocess.run(
        [PYTHON, str(BASE_DIR / "manage.py"), *args],
        check=True, stdout=subprocess.PIPE, text=True, cwd=BASE_DIR,
    ).stdout


def main() -> int:
    folder = run_dir()
    port = os.environ.get("PORT", "8000")
    address = f"http://127.0.0.1:{port}"
    lock = hold_run_lock(folder)
    if lock is None:
        return _refuse_second_instance(folder)
    if not _port_free(int(port)):
        lock.close()
        print(f"Port {port} is in use by another program: stop it, or run on another port "
              f"(PORT=8001 make run).", file=sys.stderr)
        return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    os.environ.setdefault("METRICS_TOKEN", metrics_token(folder))
    created: list[Path] = []
    redis_server = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        if not os.environ.get("REDIS_URL"):
            redis_server = RedisServer(data_dir=folder / "redis").start()
            os.environ["REDIS_URL"] = redis_server.url
            url_file = folder / URL_FILE_NAME
            url_file.write_text(redis_server.url)  # for older tools that read it
            created.append(url_file)
        created.append(write_state(folder, pid=os.getpid(), address=address,
                                   redis_url=os.environ["REDIS_URL"]))
        manage("migrate", "--noinput")
        _print_welcome(json.loads(manage("bootstrap_demo")), port)
        metrics_dir.prepare(folder / "prometheus")  # /metrics sums the workers (emptied now)
        children = _start_children(port, folder)
        return _wait(children)
    except KeyboardInterrupt:  # Ctrl-C, at any point of the start-up or while serving
        # A second Ctrl-C must not cut the clean-up short (nor print a traceback).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"\n{GOODBYE}", file=sys.stderr, flush=True)
        return 0
    finally:
        _stop(children)
        if redis_server:
            redis_server.stop()
        for path in created:
            path.unlink(missing_ok=True)
        lock.close()


def _refuse_second_instance(folder: Path) -> int:
    state = read_state(folder) or {}
    where = state.get("address", "an unknown address")
    print(f"Jobbox is already running here at {where} (pid {state.get('pid', '?')}), started "
          f"by `make run` in another shell. Use that one, or stop it (Ctrl-C there) first.",
          file=sys.stderr)
    return 1


def _port_free(port: int) -> bool:
    """True unless something listens on the port. SO_REUSEADDR, as uvicorn sets it too: the
    closed connections of a run stopped a moment ago (TIME_WAIT, for a minute) do not count,
    while a listening socket still refuses the bind."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def metrics_token(folder: Path) -> str:
    """The token `/metrics` asks for (JOBBOX["METRICS_TOKEN"]), made once, kept readable by
    its owner only."""
    path = folder / METRICS_TOKEN_FILE_NAME
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(METRICS_TOKEN_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def _start_children(port: str, folder: Path) -> list[subprocess.Popen[bytes]]:
    """The server and the worker (and, with AI_JOB_RUNNER=tasks, the tasks worker), each in
    a session of its own: Ctrl-C reaches `make run` alone, which stops them in order (one
    SIGTERM each, a graceful shutdown), and a child that outstays the grace period is killed
    with every process it started."""
    return [*_servers_and_celery(port, folder), *_tasks_worker()]


def _tasks_worker() -> list[subprocess.Popen[bytes]]:
    """With AI_JOB_RUNNER=tasks, AI jobs run on Django's Tasks framework: django-tasks-db's
    worker runs them (Celery still transcodes videos and runs the periodic reapers)."""
    if os.environ.get("AI_JOB_RUNNER", "celery") != "tasks":
        return []
    return [subprocess.Popen([PYTHON, "manage.py", "db_worker", "--interval",
                              str(TASKS_WORKER_INTERVAL_SECONDS)], cwd=BASE_DIR,
                             start_new_session=True)]


def _servers_and_celery(port: str, folder: Path) -> list[subprocess.Popen[bytes]]:
    return [
        # One origin for the page, the API and the event stream: uvicorn serves the whole
        # ASGI app here; production splits the stream off to uvicorn and keeps polls on
        # gunicorn's sync path (docs/how-to/deployment.md).
        subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "academy.asgi:application", "--host", "127.0.0.1",
             "--port", port, "--workers", "2", "--timeout-graceful-shutdown", "3",
             *uvicorn_options()],
            cwd=BASE_DIR, start_new_session=True,
        ),
        # The worker, with the periodic scheduler (beat) embedded: one process to run here.
        subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "academy", "worker", "--beat", "--loglevel", "INFO",
             "--concurrency", "2", "--schedule", str(folder / "celerybeat-schedule")],
            cwd=BASE_DIR, start_new_session=True,
        ),
    ]


def uvicorn_options(environ: Mapping[str, str] = os.environ) -> list[str]:
    """uvicorn's connection budgets and who the client is (docs/how-to/security.md).

    - the h11 protocol with a header read timeout and closes that cannot hang
      (academy.http_protocol);
    - an idle kept-alive connection closed after KEEP_ALIVE_TIMEOUT_SECONDS;
    - at most CONNECTIONS_PER_WORKER connections (or requests) per worker: beyond, a 503 at
      once instead of a worker out of file descriptors;
    - proxy headers read only when FORWARDED_ALLOW_IPS names the proxy in front. uvicorn
      trusts `X-Forwarded-For` from 127.0.0.1 by default: on a machine where anyone local (or
      a proxy that passes the header through) reaches the port, every sign-in and token-miss
      budget keyed by address could be dodged by inventing the header.
    """
    options = ["--http", "academy.http_protocol:BudgetedH11Protocol",
               "--timeout-keep-alive", str(KEEP_ALIVE_TIMEOUT_SECONDS),
               "--limit-concurrency", environ.get(CONNECTIONS_VARIABLE,
                                                  str(CONNECTIONS_PER_WORKER))]
    trusted = environ.get(FORWARDED_ALLOW_IPS_VARIABLE, "").strip()
    if not trusted:
        return [*options, "--no-proxy-headers"]
    return [*options, "--proxy-headers", "--forwarded-allow-ips", trusted]


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    stop_processes(children, grace_seconds=CHILDREN_STOP_GRACE_SECONDS)


def _wait(children: list[subprocess.Popen[bytes]]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for child in children:
            code = child.poll()
            if code is not None:
                print(f"{' '.join(child.args[1:4])} exited with {code}; stopping",
                      file=sys.stderr)
                return code or 1
        with contextlib.suppress(subprocess.TimeoutExpired):
            children[0].wait(timeout=1)


def _print_welcome(demo: dict, port: str) -> None:
    base = f"http://127.0.0.1:{port}"
    print(f"\nJobbox reference service at {base}  (Ctrl-C stops everything)")
    print(f"The job box page: {base}/  (sign in with a user and password below)\n")
    for tenant in demo["tenants"]:
        for user in tenant["users"]:
            print(f"  tenant {tenant['slug']:<15} user {user['username']:<14} "
                  f"password {user['password']}  token {user['token']}")
    token = demo["tenants"][0]["users"][0]["token"]
    slug = demo["tenants"][0]["slug"]
    print(f"\nStart some jobs:  .venv/bin/python manage.py simulate_jobs --tenant {slug} "
          f"--videos 3 --ai 2 --seconds 60 --background")
    print(f"Poll one:         curl -s -H 'Authorization: Token {token}' {base}/api/videos/1/")
    print(f"Grade a sheet:    curl -s -H 'Authorization: Token {token}' -F file=@scores.xlsx "
          f"-F job_type=excel.grade_report {base}/api/ai/jobs/")
    print(f"Metrics:          curl -s -H 'Authorization: Bearer {os.environ['METRICS_TOKEN']}' "
          f"{base}/metrics\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
