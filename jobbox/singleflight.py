"""One database read per job per miss (DESIGN.md, invariant 6: "concurrent misses for one job
share one DB read").

Two layers. In a process, `Flights` makes concurrent calls for one key share one execution
(1,000 threads missing the same job cost one Redis round trip and at most one read). Across
processes and hosts, `claim_fill` is a Redis lease in the spirit of memcache leases: in one
atomic step it either returns the snapshot (or negative entry) someone else just stored, or
grants the short lease to this reader, or tells it to wait for the holder's fill. A waiter
that outlives the lease (its holder died) claims it in turn, so the bound is one read per
lease period, never one per poller.
"""

import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from jobbox import conf, keys, snapshots
from jobbox.client import get_redis, redis_errors
from jobbox.registry import TrackedJob
from jobbox.scripts import script

T = TypeVar("T")


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


class Claim(Enum):
    HIT = "hit"  # a snapshot is stored: serve it
    MISSING = "missing"  # a negative entry is stored: the id names no job
    LEASE = "lease"  # this reader holds the lease: read the database, fill, release
    WAIT = "wait"  # another reader holds it: wait for its fill


@dataclass(frozen=True, slots=True)
class Claimed:
    claim: Claim
    raw: bytes | None = None  # the stored snapshot, for HIT
    token: str | None = None  # the lease token, for LEASE


def claim_fill(job: TrackedJob, job_id: str) -> Claimed:
    """One round trip: the stored answer, or the fill lease, or "wait". Raises RedisUnavailable."""
    token = uuid.uuid4().hex
    with redis_errors():
        kind, raw = script("claim_fill", get_redis())(
            keys=[
                keys.status_key(job.status_namespace, job_id),
                keys.missing_key(job.status_namespace, job_id),
                keys.fill_lease_key(job.status_namespace, job_id),
            ],
            args=[token, conf.get("FILL_LEASE_MILLISECONDS"), snapshots.FORMAT],
        )
    claim = Claim(kind.decode() if isinstance(kind, bytes) else kind)
    return Claimed(claim, raw=raw or None, token=token if claim is Claim.LEASE else None)


def release_fill(job: TrackedJob, job_id: str, token: str) -> None:
    """Give the lease back (only if still ours). Raises RedisUnavailable."""
    with redis_errors():
        script("release_lease", get_redis())(
            keys=[keys.fill_lease_key(job.status_namespace, job_id)], args=[token]
        )
