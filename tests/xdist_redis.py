"""Under pytest-xdist, each worker gets a private redis-server of its own.

The tests flush their Redis database, and pub/sub channels are shared by every database
number of a server, so workers sharing one server would see each other's keys and events.
Load it with `-p tests.xdist_redis` (the Makefile does, beside `-n`): it must set REDIS_URL
before pytest-django imports the settings, which happens before any conftest is read.
Outside a worker (a serial run) it does nothing.
"""

import os

import pytest

from process_tools.redis_server import RedisServer

WORKER_VARIABLE = "PYTEST_XDIST_WORKER"
SERVER_KEY = pytest.StashKey[RedisServer]()


def worker_id() -> str | None:
    return os.environ.get(WORKER_VARIABLE)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    if not worker_id():
        return
    server = RedisServer().start()
    early_config.stash[SERVER_KEY] = server
    # Read by the settings, and inherited by the worker processes a test starts.
    os.environ["REDIS_URL"] = server.url


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(SERVER_KEY, None)
    if server is not None:
        server.stop()


def require_private_redis(config: pytest.Config) -> None:
    """Refuse a parallel run without a Redis per worker, with the option that gives one (in
    the controller, before any worker starts)."""
    parallel = worker_id() or config.getoption("numprocesses", default=None)
    if parallel and not config.pluginmanager.has_plugin("tests.xdist_redis"):
        raise pytest.UsageError(
            "parallel runs (-n) need a Redis per worker: add `-p tests.xdist_redis`")
