"""Unknown tokens cost a bounded number of database reads, and no Redis key at all
(docs/explanation/invariants.md, invariant 10).

A token that names nobody is not remembered in Redis: 5,000 random tokens would leave 5,000
keys. Instead each process counts, per client address, the token look-ups that reached the
database and found nothing; past `TOKEN_MISSES_PER_MINUTE` in a minute, that address's tokens
that are not in the principal cache are refused without a database read until its budget
refills. A valid token cached in Redis never needs the budget, so its owner keeps working
however many bogus tokens arrive; a valid token not yet cached, from an address that spent its
budget, is refused like a bogus one until the budget refills (a minute at most).

The addresses tracked are bounded (least recently seen dropped), so a sender rotating
addresses costs memory that is bounded too, and each new address one budget of reads.
"""

import threading
import time
from collections.abc import Callable

from cachetools import LRUCache
from django.http import HttpRequest
from django.utils.module_loading import import_string

from jobbox import client, conf

# The budget refills over this window: "per minute" in the setting's name.
REFILL_WINDOW_SECONDS = 60.0
# Addresses whose budgets one process keeps; an address dropped for space starts afresh,
# which costs at most one more budget of reads for it.
TRACKED_ADDRESSES = 10_000


class TokenMissBudget:
    """Per-address token buckets of database look-ups that may find no token."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # read on every call: a test may replace it
        self._lock = threading.Lock()
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=TRACKED_ADDRESSES)

    def may_look_up(self, address: str) -> bool:
        """Whether a token from `address` that misses the cache may be read from the database."""
        with self._lock:
            return self._level(address) >= 1.0

    def spend(self, address: str) -> None:
        """Record a look-up that found no token."""
        with self._lock:
            self._buckets[address] = (max(self._level(address) - 1.0, 0.0), self.clock())

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _level(self, address: str) -> float:
        capacity = float(conf.settings().TOKEN_MISSES_PER_MINUTE)
        level, at = self._buckets.get(address, (capacity, self.clock()))
        refilled = (self.clock() - at) * capacity / REFILL_WINDOW_SECONDS
        return min(capacity, level + refilled)


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
