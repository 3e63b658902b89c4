"""Unknown tokens cost a bounded number of database reads, no Redis key at all, and never
lock out a valid token (docs/explanation/invariants.md,
invariant 10).

A token that names nobody is not remembered in Redis: 5,000 random tokens would leave 5,000
keys. Each process instead keeps:

- the tokens it already looked up and found nothing for (a bounded, expiring set of their
  digests): a repeated bogus token is refused without a database read;
- per client address, a budget of look-ups that find nothing (`TOKEN_MISSES_PER_MINUTE`);
- past an address's budget, a pool shared by every address (`TOKEN_MISS_POOL_PER_MINUTE`)
  from which its new tokens are still looked up.

So a valid token that is not cached yet is read from the database even while its address is
flooding bogus tokens (a school's students share one NAT address): it is refused only when
its address's budget and the whole process's pool are both spent, a flood of new random
tokens faster than the pool refills (20 a second per process by default). The database reads
that random tokens cost are bounded by the two budgets together.

The addresses and digests tracked are bounded (least recently seen dropped), so a sender
rotating addresses or tokens costs memory that is bounded too.
"""

import threading
import time
from collections.abc import Callable

from cachetools import LRUCache, TTLCache
from django.http import HttpRequest
from django.utils.module_loading import import_string

from jobbox import client, conf

# The budgets refill over this window: "per minute" in the settings' names.
REFILL_WINDOW_SECONDS = 60.0
# Addresses whose budgets one process keeps; an address dropped for space starts afresh,
# which costs at most one more budget of reads for it.
TRACKED_ADDRESSES = 10_000
# Digests of tokens that named nobody, refused without a read: 100,000 digests are ~10 MB; a
# token created after its digest was remembered (rare: a new token is random) works within
# KNOWN_MISS_SECONDS.
KNOWN_MISSES = 100_000
KNOWN_MISS_SECONDS = 60.0
_POOL = "\0pool"  # the shared pool's bucket; no address looks like it


class TokenMissBudget:
    """Token buckets of database look-ups that may find no token: one per address and one
    shared pool, and the digests already known to name nobody."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # read on every call: a test may replace it
        self._lock = threading.Lock()
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=TRACKED_ADDRESSES)
        self._known_misses: TTLCache[str, bool] = TTLCache(
            maxsize=KNOWN_MISSES, ttl=KNOWN_MISS_SECONDS, timer=lambda: self.clock())

    def may_look_up(self, address: str, digest: str) -> bool:
        """Whether a token (by its digest) from `address` that misses the cache may be read
        from the database."""
        with self._lock:
            if digest in self._known_misses:
                return False
            return (self._level(address, _address_capacity()) >= 1.0
                    or self._level(_POOL, _pool_capacity()) >= 1.0)

    def spend(self, address: str, digest: str) -> None:
        """Record a look-up that found no token: from the address's budget while it lasts,
        then from the shared pool."""
        with self._lock:
            self._known_misses[digest] = True
            if self._level(address, _address_capacity()) >= 1.0:
                self._take(address, _address_capacity())
            else:
                self._take(_POOL, _pool_capacity())

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._known_misses.clear()

    def _take(self, bucket: str, capacity: float) -> None:
        self._buckets[bucket] = (max(self._level(bucket, capacity) - 1.0, 0.0), self.clock())

    def _level(self, bucket: str, capacity: float) -> float:
        level, at = self._buckets.get(bucket, (capacity, self.clock()))
        refilled = (self.clock() - at) * capacity / REFILL_WINDOW_SECONDS
        return min(capacity, level + refilled)


def _address_capacity() -> float:
    return float(conf.settings().TOKEN_MISSES_PER_MINUTE)


def _pool_capacity() -> float:
    return float(conf.settings().TOKEN_MISS_POOL_PER_MINUTE)


budget = TokenMissBudget()
# Budgets start afresh with new settings (a test's override, a reconfigured process).
client.on_reset(budget.clear)


def client_address(request: HttpRequest) -> str:
    """The address a token miss is charged to: `JOBBOX["CLIENT_ADDRESS_RESOLVER"]` (behind a
    proxy, the project's own reading of its forwarding header) or the peer's address."""
    resolver = conf.settings().CLIENT_ADDRESS_RESOLVER
    if resolver:
        return str(import_string(resolver)(request))
    return str(request.META.get("REMOTE_ADDR") or "unknown")
