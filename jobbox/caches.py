"""In-process caches: shared flights, outage copies, and large values kept for a window.

DESIGN.md, invariant 6 ("concurrent misses for one job share one DB read"; "the database
load this adds does not grow with the number of pollers"):

- `Flights`: concurrent calls for one key in this process share one execution (1,000
  threads missing the same job cost one Redis round trip and at most one read).
- `FallbackCache`: used only while Redis is unavailable; each process reads a job (or a
  principal) at most once per TTL and serves the copy meanwhile. Absent answers (no such
  job, unknown token) are cached too. Entries are dropped when clients are reset.
- `LargeValueCache`: values too large for Redis (a spreadsheet job's result), kept for a
  window and bounded in bytes (`jobbox.large_fields`).
"""

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cachetools import TLRUCache, TTLCache

from jobbox import client, conf

T = TypeVar("T")
_ABSENT: Any = object()


@dataclass
class _Call(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class Flights(Generic[T]):
    """In-process single flight: the first caller for a key runs `fn`, the others share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call[T]] = {}

    def run(self, key: Hashable, fn: Callable[[], T]) -> tuple[T, bool]:
        """`fn()`'s result (or its exception) and whether this caller was the one running it."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = _Call()
        assert call is not None
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result, False  # type: ignore[return-value]
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.result, True


class FallbackCache(Generic[T]):
    """Copies of database reads made while Redis is unavailable, fresh for a TTL setting."""

    def __init__(self, ttl_setting: str, *, timer: Callable[[], float] = time.monotonic) -> None:
        self._ttl_setting = ttl_setting
        self._timer = timer
        self._lock = threading.Lock()
        self._cache: TTLCache[Hashable, T] | None = None
        self._flights: Flights[T] = Flights()
        client.on_reset(self.clear)

    def get_or_load(self, key: Hashable, load: Callable[[], T]) -> tuple[T, bool]:
        """The cached value, else `load()`'s (shared by concurrent callers); True if loaded here."""
        with self._lock:
            # One look-up, not `key in cache` then `cache[key]`: each reads the clock, and an
            # entry that expires between the two raised KeyError (a 500 during an outage).
            found = self._ensure().get(key, _ABSENT)
            if found is not _ABSENT:
                return found, False

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
                timer=self._timer,
            )
        return self._cache


# Job snapshots (None: no such job) read from the database while Redis is unavailable. A
# transition committed in this process drops its job's copy (jobbox.write), so the process
# that made a change never serves the state before it.
job_snapshots: "FallbackCache[Any]" = FallbackCache("FALLBACK_CACHE_SECONDS")
# Principals (None: unknown) read from the database while Redis is unavailable, by key name.
principals: "FallbackCache[Any]" = FallbackCache("PRINCIPAL_FALLBACK_SECONDS")


@dataclass(frozen=True, slots=True)
class _Sized:
    value: Any
    size_bytes: int
    window_seconds: float


class LargeValueCache:
    """Values bounded in total bytes (least recently used dropped first), each fresh for the
    window it was stored with; concurrent loads of one key share one `load()`."""

    def __init__(self, *, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # read on every access: a test may replace it
        self._lock = threading.Lock()
        self._flights: Flights[Any] = Flights()
        self._cache: TLRUCache[Hashable, _Sized] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, entry, now: now + entry.window_seconds,
            timer=lambda: self.clock(),
            getsizeof=lambda entry: entry.size_bytes,
        )

    def put(self, key: Hashable, value: Any, *, size_bytes: int, window_seconds: float) -> None:
        with self._lock:
            self._cache.pop(key, None)
            if size_bytes <= self._cache.maxsize:  # one larger than the whole cache is not kept
                self._cache[key] = _Sized(value, size_bytes, window_seconds)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._cache.get(key)
        return (False, None) if entry is None else (True, entry.value)

    def get_or_load(self, key: Hashable, load: Callable[[], tuple[Any, int]], *,
                    window_seconds: float) -> tuple[Any, bool]:
        """The kept value, else `load()`'s (value, size in bytes); True if loaded here."""
        found, value = self.get(key)
        if found:
            return value, False

        def load_and_keep() -> Any:
            loaded, size_bytes = load()
            self.put(key, loaded, size_bytes=size_bytes, window_seconds=window_seconds)
            return loaded

        return self._flights.run(key, load_and_keep)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
