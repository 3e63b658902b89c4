"""The one Redis client and the one place that decides what a Redis failure means (STYLE.md, 4).

Callers wrap Redis work in `redis_errors()`: any connection error, timeout or server error
becomes `RedisUnavailable`, a result distinct from "key missing", so the caller can choose
the database fallback knowingly. Clients are created lazily, per URL, so nothing connects at
import time and `override_settings(JOBBOX=...)` takes effect.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobbox import conf

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


class RedisUnavailable(Exception):
    """Redis could not answer: down, slow past the timeout, or refusing the command."""


def get_redis() -> redis.Redis:
    url = conf.get("REDIS_URL")
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = _make_client(url)
    return client


def _make_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=conf.get("SOCKET_TIMEOUT_SECONDS"),
        socket_connect_timeout=conf.get("CONNECT_TIMEOUT_SECONDS"),
        # Retrying inside redis-py would multiply the timeout; the caller's fallback is faster.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


@contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RedisUnavailable(type(exc).__name__) from exc
    except redis.exceptions.ResponseError as exc:
        # NOSCRIPT is handled by redis-py's Script; anything else here (OOM, READONLY,
        # BUSY) means this Redis cannot serve us right now.
        raise RedisUnavailable(type(exc).__name__) from exc


def reset_clients() -> None:
    """Drop cached clients (tests, settings changes, after fork)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def connect_settings_reset() -> None:
    from django.core.signals import setting_changed

    def _on_setting_changed(setting: str, **_: object) -> None:
        if setting in ("JOBBOX", "REDIS_URL"):
            reset_clients()

    setting_changed.connect(_on_setting_changed, weak=False, dispatch_uid="jobbox-client-reset")
