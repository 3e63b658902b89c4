"""Fault-injection helpers: a private Redis to stop, pause and restart, an unreachable
database, and a count of the SQL every thread runs (docs/explanation/invariants.md, invariants
6-8)."""

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test import override_settings

from process_tools import free_port
from process_tools.redis_server import RedisServer

T = TypeVar("T")


@contextlib.contextmanager
def private_redis_server() -> Iterator[RedisServer]:
    """jobbox on a redis-server of the test's own (never the machine's 6379)."""
    with RedisServer() as server, override_settings(
        JOBBOX={**settings.JOBBOX, "REDIS_URL": server.url, "REDIS_CLUSTER": False}
    ):
        yield server


class SqlCounter:
    """Every SQL statement run on any connection of any thread while active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statements: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: Any) -> Any:
        with self._lock:
            self.statements.append(sql)
        return execute(sql, params, many, context)

    def _install(self, sender: Any = None, connection: Any = None, **_: Any) -> None:
        if connection is not None and self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)

    def __enter__(self) -> "SqlCounter":
        connection_created.connect(self._install, weak=False, dispatch_uid=f"count-{id(self)}")
        self._install(connection=connection)  # this thread's, connected or not
        return self

    def __exit__(self, *exc: object) -> None:
        connection_created.disconnect(dispatch_uid=f"count-{id(self)}")
        with contextlib.suppress(ValueError):
            connection.execute_wrappers.remove(self)

    def count(self, table: str | None = None) -> int:
        with self._lock:
            return sum(1 for sql in self.statements if table is None or table in sql)


def closing_connections(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn` in a worker thread and close that thread's connections after it."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return wrapped


@contextlib.contextmanager
def database_unreachable() -> Iterator[None]:
    """Point this thread's connection at nothing: every query raises OperationalError."""
    db = connection.settings_dict
    saved = {key: db[key] for key in ("NAME", "PORT")}
    connection.close()
    if connection.vendor == "sqlite":
        db["NAME"] = "/nonexistent-jobbox-dir/unreachable.sqlite3"
    else:
        db["PORT"] = str(free_port())  # nothing listens there
    try:
        yield
    finally:
        connection.close()
        db.update(saved)
