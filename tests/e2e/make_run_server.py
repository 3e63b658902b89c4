"""uvicorn started with `make run`'s own options (academy.run.uvicorn_options) on the test
database and Redis: what a client meets, connection budgets included."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from academy.embedded import free_port
from academy.run import uvicorn_options
from jobbox import conf
from tests.asgi_server import _serving


@contextmanager
def serve_like_make_run(**env: str) -> Iterator[tuple[str, int]]:
    """Runs one uvicorn worker as `make run` does until the block ends; yields its base URL
    and port. `env` reaches both the options and the server (FORWARDED_ALLOW_IPS, ...)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "academy.asgi:application", "--host",
               "127.0.0.1", "--port", str(port), "--log-level", "warning",
               *uvicorn_options(env)]
    with _serving(command, port, conf.get("REDIS_URL"), env) as base:
        yield base, port
