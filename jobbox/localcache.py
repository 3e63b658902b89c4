"""Short-lived in-process copies of database reads, used only while Redis is unavailable.

DESIGN.md, invariant 6: "the database load this adds does not grow with the number of
pollers". With the breaker open every poll would read the database; instead each process
reads a job (or a principal) at most once per TTL and serves the copy meanwhile, and
concurrent misses for one key share one read (`Flights`). Absent answers (no such job,
unknown token) are cached too. Entries are dropped when clients are reset.
"""

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

from jobbox import client, conf
from jobbox.singleflight import Flights

T = TypeVar("T")


class FallbackCache(Generic[T]):
    def __init__(self, ttl_setting: str) -> None:
        self._ttl_setting = ttl_setting
        self._lock = threading.Lock()
        self._cache: TTLCache[Hashable, T] | None = None
        self._flights: Flights[T] = Flights()
        client.on_reset(self.clear)

    def get_or_load(self, key: Hashable, load: Callable[[], T]) -> tuple[T, bool]:
        """The cached value, else `load()`'s (shared by concurrent callers); True if loaded here."""
        with self._lock:
            cache = self._ensure()
            if key in cache:
                return cache[key], False

        def load_and_keep() -> T:
            value = load()
            with self._lock:
                self._ensure()[key] = value
            return value

        return self._flights.run(key, load_and_keep)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._cache = None  # rebuilt with the settings then in force

    def _ensure(self) -> "TTLCache[Hashable, T]":
        if self._cache is None:
            self._cache = TTLCache(
                maxsize=conf.get("FALLBACK_CACHE_MAX_ENTRIES"),
                ttl=conf.get(self._ttl_setting),
            )
        return self._cache


# Job snapshots (None: no such job) read from the database while Redis is unavailable. A
# transition committed in this process drops its job's copy (jobbox.writers), so the process
# that made a change never serves the state before it.
job_snapshots: "FallbackCache[object]" = FallbackCache("FALLBACK_CACHE_SECONDS")
