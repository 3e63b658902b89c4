"""The one Redis client and the one place that decides what a Redis failure means.

Callers wrap Redis work in `redis_errors()`: any connection error, timeout or server error
becomes `RedisUnavailable`, a result distinct from "key missing", so the caller can choose
the database fallback knowingly. Clients are created lazily, per URL, so nothing connects at
import time and `override_settings(JOBBOX=...)` takes effect.

Each URL has a circuit breaker (`jobbox.breaker`; docs/explanation/invariants.md, invariant
6): while it is open, `redis_errors()` raises `RedisUnavailable` before any network call, so
a dead or slow Redis costs a request nothing but its database fallback.

On an event loop (`jobbox.aio`, the event stream), `async_redis_errors()` is the same
translation for the loop's own connections; see its docstring for why it leaves the breaker
alone.
"""

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TypeVar

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobbox import conf, failover
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
# Called by `reset_clients()`: in-process state that must not outlive a client (outage copies).
_reset_hooks: list[Callable[[], None]] = []

T = TypeVar("T")

# Redis could not be reached: a connection refused or lost, a timeout, or (RedisClusterException)
# no node answers for a slot (a failover under way, a cluster that cannot be reached to learn
# its slot map).
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.RedisClusterException)
# What a failed call on the event loop's connections raises: a socket error (OSError), any
# error redis-py reports (server replies included: a command that cannot run is as good as a
# Redis that cannot be reached for a stream), or a cluster that cannot route a slot.
_ASYNC_FAILURES = (OSError, redis.exceptions.RedisError, redis.exceptions.RedisClusterException)


class RedisUnavailable(Exception):
    """Redis could not answer: down, slow past the timeout, or refusing the command."""


class CircuitOpen(RedisUnavailable):
    """Not even tried: the breaker is open after a recent failure (retrying now is useless)."""


def is_cluster() -> bool:
    return bool(conf.settings().REDIS_CLUSTER)


def get_redis() -> RedisClient:
    found = (conf.settings().REDIS_URL, is_cluster())
    client = _clients.get(found)
    if client is None:
        try:
            with _lock:
                client = _clients.get(found)
                if client is None:
                    client = _clients[found] = _make_client(*found)
        except _UNREACHABLE as exc:
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
        "socket_timeout": conf.settings().SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": conf.settings().CONNECT_TIMEOUT_SECONDS,
        # Retrying inside redis-py would multiply the timeout; the caller's fallback is faster.
        # The cluster client still refreshes its slot map after a failed call, so the
        # breaker's probe after a failover goes to the promoted replica.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    if cluster:
        client = redis.cluster.RedisCluster.from_url(url, **options)
        failover.watch(client)  # a promoted replica may have lost writes: repaired then
        return client
    # Blocking: past the cap a command waits for a free connection (as long as it may wait
    # on Redis itself) instead of opening one more, which the pool would keep idle forever.
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=conf.settings().REDIS_MAX_CONNECTIONS,
        timeout=conf.settings().SOCKET_TIMEOUT_SECONDS, **options)
    return redis.Redis.from_pool(pool)


def get_breaker() -> CircuitBreaker:
    url = conf.settings().REDIS_URL
    found = _breakers.get(url)
    if found is None:
        with _lock:
            found = _breakers.get(url)
            if found is None:
                found = _breakers[url] = CircuitBreaker(
                    failure_threshold=conf.settings().BREAKER_FAILURE_THRESHOLD,
                    open_seconds=conf.settings().BREAKER_OPEN_SECONDS,
                )
    return found


class JustRecovered(RedisUnavailable):
    """This call proved Redis back after an outage; what it read is not trusted: it may be a
    cached value an invalidation missed during the outage (jobbox.pending replays them as
    the breaker closes). The caller answers from the database this once."""


@contextmanager
def redis_errors() -> Iterator[None]:
    breaker = get_breaker()
    bypassed = _bypass_breaker.get()
    if not bypassed and not breaker.allow():
        raise CircuitOpen("circuit open")
    probing = not bypassed and breaker.state is State.HALF_OPEN
    try:
        yield
    except _UNREACHABLE as exc:
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
        breaker.record_success()  # closing, it runs the recovery listeners (the replay)
        if probing:
            raise JustRecovered("redis back; this read predates the replay")


@asynccontextmanager
async def async_redis_errors() -> AsyncIterator[None]:
    """The event loop's twin of `redis_errors()`: a failed call on the loop's connections
    (`jobbox.aio.async_client()`, the stream's pub/sub) becomes `RedisUnavailable`.

    It neither asks nor feeds the breaker: the breaker decides whether a request should try
    Redis or answer from the database at once, and an event stream has no database answer.
    Its connections are long-lived and recover on their own schedule (the hub reconnects
    with a growing pause, a browser resumes), so a stream's failure must not send every
    poll of the process to the database, nor an open breaker refuse a stream that could
    start."""
    try:
        yield
    except _ASYNC_FAILURES as exc:
        raise RedisUnavailable(type(exc).__name__) from exc


@asynccontextmanager
async def async_redis_errors_ignored() -> AsyncIterator[None]:
    """Best-effort Redis work on the event loop (a cleanup that expires by itself anyway):
    a failure is dropped, anything else is raised."""
    try:
        async with async_redis_errors():
            yield
    except RedisUnavailable:
        pass


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
