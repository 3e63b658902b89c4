"""The end-to-end layer: real worker processes, servers, browsers, fresh installs and a
Redis Cluster. It runs on the service, with the service layer's fixtures, and holds the page
tests' own: a Redis and an ASGI server per module, and Chromium."""

from collections.abc import Callable, Iterator

import pytest
import redis

from process_tools.redis_server import RedisServer
from tests.asgi_server import serve_asgi
from tests.browser import browsers
from tests.service.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    alice,
    bob,
    clean_redis,
    suites_redis_cluster,
    worker,
)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """The Redis a page module's server and its tests share."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(private_redis: RedisServer) -> Iterator[str]:
    """The service over ASGI on private_redis, for a module's browsers: its base URL."""
    with serve_asgi(private_redis.url) as base:
        yield base


@pytest.fixture
def on_private_redis(private_redis: RedisServer, settings, monkeypatch) -> None:
    """The test's own code on the server's Redis, emptied; a page module uses it for every
    test (`pytest.mark.usefixtures`)."""
    redis.Redis.from_url(private_redis.url).flushdb()
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": private_redis.url}
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # ordinary synchronous ones (Django's guard cannot tell them apart).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def open_browser() -> Iterator[Callable]:
    """`open_browser()`: a new Chromium per call, all closed after the test."""
    with browsers() as open_one:
        yield open_one
