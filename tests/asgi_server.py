"""A real uvicorn process serving the ASGI app on the test database, for stream and browser
tests (the event stream needs ASGI; Django's live_server is WSGI)."""

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from academy.celery import app as celery_app
from jobbox import conf
from process_tools import free_port, stop_process, wait_until
from tests.workers import start_worker, stop_worker, test_database_url

# uvicorn imports Django in a second or two here; a loaded shared machine gets room.
SERVER_START_TIMEOUT_SECONDS = 60
# The process id of each running server by its base URL (tests count its threads).
SERVER_PIDS: dict[str, int] = {}


@contextmanager
def serve_asgi(redis_url: str, app: str = "academy.asgi:application",
               **env: str) -> Iterator[str]:
    """Runs `uvicorn <app>` until the block ends; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "2"]
    with _serving(command, port, redis_url, env) as base:
        yield base


@contextmanager
def serve_wsgi(redis_url: str, **env: str) -> Iterator[str]:
    """Runs `gunicorn academy.wsgi:application` (one sync worker) until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "academy.wsgi:application", "--bind",
               f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"]
    with _serving(command, port, redis_url, env) as base:
        yield base


@contextmanager
def _serving(command: list[str], port: int, redis_url: str, env: dict[str, str]
             ) -> Iterator[str]:
    process = subprocess.Popen(
        command,
        env={**os.environ, "DATABASE_URL": test_database_url(), "REDIS_URL": redis_url,
             "REDIS_CLUSTER": "1" if conf.settings().REDIS_CLUSTER else "", **env},
    )
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base] = process.pid
    try:
        _wait_until_serving(process, base)
        yield base
    finally:
        SERVER_PIDS.pop(base, None)
        stop_process(process)


def answering(base: str) -> bool:
    """True once the server at `base` answers its health check."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _wait_until_serving(process: subprocess.Popen, base: str) -> None:
    # Stops waiting early when the server has exited (its status is then not None).
    wait_until(lambda: answering(base) or process.poll() is not None,
               timeout_seconds=SERVER_START_TIMEOUT_SECONDS, interval_seconds=0.1)
    if process.poll() is not None or not answering(base):
        raise RuntimeError("uvicorn did not start")


@contextmanager
def serve_page_with_worker(media_root: str) -> Iterator[str]:
    """The page's server and a Celery worker, both on the test database, Redis and media.

    The caller sets MEDIA_ROOT (and any other settings) in the environment first, so both
    processes inherit them.
    """
    assert os.environ.get("MEDIA_ROOT") == media_root, "set MEDIA_ROOT for the processes"
    worker = start_worker("--pool", "solo")
    try:
        with serve_asgi(conf.settings().REDIS_URL,
                        CELERY_BROKER_URL=celery_app.conf.broker_url) as base:
            yield base
    finally:
        stop_worker(worker)
