"""The one Redis client and the one place that decides what a Redis failure means (STYLE.md, 4).

Callers wrap Redis work in `redis_errors()`: any connection error, timeout or server error
becomes `RedisUnavailable`, a result distinct from "key missing", so the caller can choose
the database fallback knowingly. Clients are created lazily, per URL, so nothing connects at
import time and `override_settings(JOBBOX=...)` takes effect.

Each URL has a circuit breaker (`jobbox.breaker`, DESIGN.md invariant 6): while it is open,
`redis_errors()` raises `RedisUnavailable` before any network call, so a dead or slow Redis
costs a request nothing but its database fallback.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobbox import conf
from jobbox.breaker import CircuitBreaker, State
from jobbox.metrics import REDIS_BREAKER_STATE

logger = logging.getLogger(__name__)

# A single Redis and a cluster client offer the commands jobbox uses alike (scripts run by the
# slot of their keys, pipelines are split per node); `is_cluster()` tells the few places that
# read differently (the box's members, the stream's notifications).
RedisClient = redis.Redis | redis.cluster.RedisCluster

_clients: dict[tuple[str, bool], RedisClient] = {}
_breakers: dict[str, CircuitBreaker] = {}
_lock = threading.Lock()
# Set by `breaker_bypassed()`: this thread's calls go to Redis even while the breaker is open.
_bypass_breaker: ContextVar[bool] = ContextVar("jobbox_bypass_breaker", default=False)
# Called by `reset_clients()`: in-process state that must not outlive a client (fallback caches).
_reset_hooks: list[Callable[[], None]] = []

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis could not answer: down, slow past the timeout, or refusing the command."""


class CircuitOpen(RedisUnavailable):
    """Not even tried: the breaker is open after a recent failure (retrying now is useless)."""


def is_cluster() -> bool:
    return bool(conf.get("REDIS_CLUSTER"))


# What a failed connection looks like while a client is made or used: an outage, told as one.
_OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                  redis.exceptions.RedisClusterException)


def get_redis() -> RedisClient:
    found = (conf.get("REDIS_URL"), is_cluster())
    client = _clients.get(found)
    if client is None:
        try:
            with _lock:
                client = _clients.get(found)
                if client is None:
                    client = _clients[found] = _make_client(*found)
        except _OUTAGE_ERRORS as exc:
            # A cluster client reads the slot map as it is made: no node reachable is an
            # outage, told like any other (a single Redis's client connects on its first
            # command). Told to the breaker only once `_lock` is released: `get_breaker()`
            # takes the same lock to make the breaker, and a process that started during an
            # outage would otherwise wait on itself forever.
            get_breaker().record_failure(type(exc).__name__)
            raise RedisUnavailable(type(exc).__name__) from exc
    return client


def _make_client(url: str, cluster: bool) -> RedisClient:
    options = {
        "socket_timeout": conf.get("SOCKET_TIMEOUT_SECONDS"),
        "socket_connect_timeout": conf.get("CONNECT_TIMEOUT_SECONDS"),
        # Retrying inside redis-py would multiply the timeout; the caller's fallback is faster.
        # The cluster client still refreshes its slot map after a failed call, so the
        # breaker's probe after a failover goes to the promoted replica.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def get_breaker() -> CircuitBreaker:
    url = conf.get("REDIS_URL")
    found = _breakers.get(url)
    if found is None:
        with _lock:
            found = _breakers.get(url)
            if found is None:
                found = _breakers[url] = CircuitBreaker(
                    failure_threshold=conf.get("BREAKER_FAILURE_THRESHOLD"),
                    open_seconds=conf.get("BREAKER_OPEN_SECONDS"),
                )
    return found


@contextmanager
def redis_errors() -> Iterator[None]:
    breaker = get_breaker()
    if not _bypass_breaker.get() and not breaker.allow():
        raise CircuitOpen("circuit open")
    try:
        yield
    except _OUTAGE_ERRORS as exc:
        # RedisClusterException: no node answers for a slot (a failover under way, a
        # cluster that cannot be reached to learn its slot map).
        breaker.record_failure(type(exc).__name__)
        raise RedisUnavailable(type(exc).__name__) from exc
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith("WRONGTYPE"):
            # Redis answered: the key holds garbage of another type, not an outage.
            breaker.record_success()
        else:
            # NOSCRIPT is handled by redis-py's Script; anything else here (OOM, READONLY,
            # BUSY) means this Redis cannot serve us right now.
            breaker.record_failure(type(exc).__name__)
        raise RedisUnavailable(type(exc).__name__) from exc
    else:
        breaker.record_success()


@contextmanager
def breaker_bypassed() -> Iterator[None]:
    """Try Redis even if the breaker is open: for rare writes worth a timeout (a transition's
    snapshot after commit), never for polls. Outcomes still feed the breaker."""
    token = _bypass_breaker.set(True)
    try:
        yield
    finally:
        _bypass_breaker.reset(token)


def with_retries(operation: Callable[[], T], *, attempts: int, pause_seconds: float) -> T:
    """`operation()` against Redis whatever the breaker says, tried `attempts` times with a
    growing pause; the last `RedisUnavailable` is raised. For rare writes that matter (a
    transition's snapshot after commit, a principal's invalidation), never for polls: the
    caller (a worker, a save) waits for the pauses."""
    for attempt in range(1, attempts + 1):
        try:
            with breaker_bypassed(), redis_errors():
                return operation()
        except RedisUnavailable:
            if attempt == attempts:
                raise
            time.sleep(pause_seconds * attempt)
    raise AssertionError("unreachable: attempts must be at least 1")


def on_reset(hook: Callable[[], None]) -> None:
    """Run `hook` whenever clients are reset (state tied to one Redis, one settings set)."""
    _reset_hooks.append(hook)


def reset_clients() -> None:
    """Drop cached clients (tests, settings changes, after fork)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _breakers.clear()
    # The gauge is the process's, not a breaker's: the next breaker starts closed, and so
    # must the gauge, or /metrics keeps telling of an outage that belonged to the old one.
    REDIS_BREAKER_STATE.set(int(State.CLOSED))
    for hook in _reset_hooks:
        hook()


def connect_settings_reset() -> None:
    from django.core.signals import setting_changed

    def _on_setting_changed(setting: str, **_: object) -> None:
        if setting in ("JOBBOX", "REDIS_URL"):
            reset_clients()

    setting_changed.connect(_on_setting_changed, weak=False, dispatch_uid="jobbox-client-reset")
