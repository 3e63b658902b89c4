"""Large snapshot fields: inline in Redis up to a size, else read at most once per window.

docs/explanation/invariants.md, invariant 1 (the spreadsheet job's result is cached in Redis up
to a size limit).
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
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from jobbox.caches import LargeValueCache
from jobbox.metrics import LARGE_FIELD_READS

# Suffix of the marker field that replaces a value left out of the snapshot.
SPILLED_SUFFIX = "__spilled_version"
# Memory the process-local cache may hold: a few large results of popular jobs, not all.
CACHE_MAX_BYTES = 32 * 1024 * 1024

cache = LargeValueCache(max_bytes=CACHE_MAX_BYTES)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def pack(fields: MutableMapping[str, Any], name: str, value: Any, *, kind: str, job_id: str,
         version: int, max_bytes: int, window_seconds: float) -> None:
    """Set `fields[name]` to `value` if its JSON fits in `max_bytes`, else to a marker (and
    keep the value in this process for `window_seconds`: the caller holds the row)."""
    size = _json_size(value)
    if size <= max_bytes:
        fields[name] = value
        return
    fields[name] = None
    fields[name + SPILLED_SUFFIX] = version
    cache.put((kind, job_id, name, version), value, size_bytes=size,
              window_seconds=window_seconds)


def unpack(fields: Mapping[str, Any], name: str, *, kind: str, job_id: str,
           load: Callable[[], Any], window_seconds: float) -> Any:
    """The value `pack()` stored or left out; `load()` (one DB read) at most once per window."""
    version = fields.get(name + SPILLED_SUFFIX)
    if version is None:
        return fields.get(name)

    def sized_load() -> tuple[Any, int]:
        value = load()
        return value, _json_size(value)

    value, loaded = cache.get_or_load((kind, job_id, name, int(version)), sized_load,
                                      window_seconds=window_seconds)
    LARGE_FIELD_READS.labels(kind, "db" if loaded else "process").inc()
    return value
