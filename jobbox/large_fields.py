"""Large snapshot fields: inline in Redis up to a size, else read at most once per window.

DESIGN.md, invariant 1 ("the spreadsheet job's result (cached in Redis up to a size limit)").
A `TrackedJob` calls `pack()` in `snapshot_fields()` and `unpack()` in `render()`:

- a value whose JSON fits in `max_bytes` goes into the snapshot, so a poll costs zero SQL;
- a larger one is left out of Redis (a marker with the row version stands in for it) and is
  kept in a bounded, process-local cache for `window_seconds`. A poll reads it from the
  database at most once per window per process, and concurrent polls of one job in one
  process share that read (single flight), so the cost never grows with the pollers.

When the snapshot is built from a row the caller already holds (a cache miss, a Redis
outage, a transition), `pack()` remembers the value, so that request costs no extra read.
Values cached here must be ones that do not change at a given row version.
"""

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from jobbox.metrics import LARGE_FIELD_READS

# Suffix of the marker field that replaces a value left out of the snapshot.
SPILLED_SUFFIX = "__spilled_version"
# Memory the process-local cache may hold: a few large results of popular jobs, not all.
CACHE_MAX_BYTES = 32 * 1024 * 1024

CacheKey = tuple[str, str, str, int]


@dataclass(slots=True)
class _Entry:
    value: Any
    size_bytes: int
    stored_at: float


class WindowedCache:
    """A process-local LRU bounded in bytes whose entries are fresh for a window."""

    def __init__(self, *, max_bytes: int = CACHE_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._size_bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[CacheKey, threading.Lock] = {}

    def put(self, key: CacheKey, value: Any, size_bytes: int) -> None:
        with self._lock:
            self._drop(key)
            if size_bytes > self.max_bytes:
                return
            self._entries[key] = _Entry(value, size_bytes, self.clock())
            self._size_bytes += size_bytes
            while self._size_bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def get(self, key: CacheKey, *, window_seconds: float) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if self.clock() - entry.stored_at >= window_seconds:
                self._drop(key)
                return False, None
            self._entries.move_to_end(key)
            return True, entry.value

    def get_or_load(self, key: CacheKey, load: Callable[[], Any], *,
                    window_seconds: float) -> Any:
        found, value = self.get(key, window_seconds=window_seconds)
        if found:
            return value
        with self._lock:
            flight = self._loading.setdefault(key, threading.Lock())
        with flight:  # the first caller reads; the others wait and take its answer
            found, value = self.get(key, window_seconds=window_seconds)
            if not found:
                value = load()
                self.put(key, value, _json_size(value))
        with self._lock:
            if not flight.locked():
                self._loading.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size_bytes = 0

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size_bytes -= entry.size_bytes


cache = WindowedCache()


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def pack(fields: MutableMapping[str, Any], name: str, value: Any, *, kind: str, job_id: str,
         version: int, max_bytes: int) -> None:
    """Set `fields[name]` to `value` if its JSON fits in `max_bytes`, else to a marker."""
    size = _json_size(value)
    if size <= max_bytes:
        fields[name] = value
        return
    fields[name] = None
    fields[name + SPILLED_SUFFIX] = version
    cache.put((kind, job_id, name, version), value, size)


def unpack(fields: Mapping[str, Any], name: str, *, kind: str, job_id: str,
           load: Callable[[], Any], window_seconds: float) -> Any:
    """The value `pack()` stored or left out; `load()` (one DB read) at most once per window."""
    version = fields.get(name + SPILLED_SUFFIX)
    if version is None:
        return fields.get(name)
    loaded = False

    def counted_load() -> Any:
        nonlocal loaded
        loaded = True
        return load()

    value = cache.get_or_load((kind, job_id, name, int(version)), counted_load,
                              window_seconds=window_seconds)
    LARGE_FIELD_READS.labels(kind, "db" if loaded else "process").inc()
    return value
