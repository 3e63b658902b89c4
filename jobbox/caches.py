"""In-process caches: shared flights, outage copies, and large values kept for a window.

docs/explanation/invariants.md, invariant 6 ("concurrent misses for one job share one DB
read"; "the database load this adds is bounded by the number of web processes, not by jobs
or pollers"):

- `Flights`: concurrent calls for one key in this process share one execution (1,000
  threads missing the same job cost one Redis round trip and at most one read).
- `OutageCopies`: used only while Redis is unavailable; each process serves its copies of
  the jobs (and principals) it is asked about and refreshes them in batches, one query per
  group (a job kind; tokens; users) per interval, so the database load of an outage is a
  small constant per process, whatever the number of jobs and pollers. Absent answers (no
  such job, unknown token) are kept too. Copies are dropped when clients are reset.
- `LargeValueCache`: values too large for Redis (a spreadsheet job's result), kept for a
  window and bounded in bytes (`jobbox.large_fields`).
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cachetools import TLRUCache

from jobbox import client, conf
from jobbox.metrics import OUTAGE_QUERIES

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


# --- Outage copies (invariant 6: one query per kind per interval) ----------------------------

# A batch read: the value of every key asked for that exists (a key left out names nothing).
LoadMany = Callable[[list[Any]], Mapping[Any, Any]]
# The rows worth holding before anyone asks (a kind's live jobs): key -> value.
Prefetch = Callable[[], Mapping[Any, Any]]
# A copy asked for within this many intervals is refreshed with its group: a poller at 1 Hz,
# or one that polls every few seconds, stays in the batch; one gone for longer drops out of
# the query (and costs a batched first read if it comes back).
ASKED_RECENTLY_INTERVALS = 30
# While Redis is away a polled group refreshes every interval; a group whose last query is
# older than this many intervals starts afresh (a new outage, seconds or hours after the last
# one): its copies are all stale, so its first query reads the live jobs again (`prefetch`)
# rather than each copy costing a query of its own.
PREFETCH_AFTER_IDLE_INTERVALS = 3
# Jobs whose forced read a process remembers (`OncePerInterval`): each is kept one interval,
# so this bounds the jobs a process re-reads for clients per interval, not the jobs it serves.
FORCED_READS_MAX_KEYS = 10_000


@dataclass
class _Copy:
    group: Hashable
    value: Any
    loaded_at: float
    asked_at: float


@dataclass
class _Round:
    """One batch query of a group: the keys waiting for it, and its outcome."""

    keys: set[Hashable] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    values: dict[Hashable, Any] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass
class _Group:
    # Held by the round whose query runs: one query of a group at a time in this process.
    querying: threading.Lock = field(default_factory=threading.Lock)
    # The round collecting keys for the next query (those who ask while one runs join it).
    next_round: _Round | None = None
    last_round_at: float | None = None


class _Interval:
    """A cache whose entries live one interval, read from a setting on every use (a test or
    a settings change takes effect at once), on a clock a test may replace."""

    def __init__(self, interval_setting: str, clock: Callable[[], float]) -> None:
        if interval_setting not in conf.FIELDS:
            raise ValueError(f"{interval_setting!r} is not a jobbox setting")
        self.clock = clock  # read on every access: a test may replace it
        self._interval_setting = interval_setting

    def interval(self) -> float:
        return float(getattr(conf.settings(), self._interval_setting))


class OutageCopies(_Interval):
    """Copies of database reads served while Redis is unavailable, refreshed in batches.

    Each key belongs to a group (a job kind; token or user principals). A copy is served
    while younger than the interval setting; an older one, or a key never read here, joins
    the group's next round, one query that reads every copy of the group asked for
    recently (ASKED_RECENTLY_INTERVALS) plus the keys waiting, so all of them share one
    `loaded_at` and expire together: a process runs one query per group per interval
    however many jobs and pollers it serves, plus one per batch of first reads (keys asked
    while a query runs share the next one). A group's first round after a quiet spell also
    runs its `prefetch` (a kind's live jobs), so the jobs about to be polled here are held
    before their first poll. A served copy is at most one interval old (its query's start).
    """

    def __init__(self, interval_setting: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 version_of: Callable[[Any], int] | None = None) -> None:
        super().__init__(interval_setting, clock)
        # Versioned values: a copy is never replaced by an older version (`offer`, `_keep`).
        self._version_of = version_of
        self._lock = threading.Lock()
        self._copies: OrderedDict[Hashable, _Copy] = OrderedDict()  # least recently asked first
        self._groups: dict[Hashable, _Group] = {}
        client.on_reset(self.clear)

    def get(self, key: Hashable, *, group: Hashable, load_many: LoadMany,
            prefetch: Prefetch | None = None) -> tuple[Any, bool]:
        """The copy of `key` (None: it names nothing), and True if this call ran the query."""
        interval = self.interval()
        with self._lock:
            now = self.clock()
            copy = self._copies.get(key)
            if copy is not None:
                copy.asked_at = now
                self._copies.move_to_end(key)
                if now - copy.loaded_at < interval:
                    return copy.value, False
            state = self._groups.setdefault(group, _Group())
            round_ = state.next_round
            leading = round_ is None
            if round_ is None:
                round_ = state.next_round = _Round()
            round_.keys.add(key)
        if leading:
            self._run(group, state, round_, load_many, prefetch, interval)
        else:
            round_.done.wait()
        if round_.error is not None:
            raise round_.error
        return round_.values.get(key), leading

    def asked_since(self, seconds: float) -> dict[Hashable, list[Hashable]]:
        """The keys asked for within the last `seconds`, by group: what this process served
        while Redis was away (restored into Redis when it returns, `jobbox.reconcile`)."""
        with self._lock:
            since = self.clock() - seconds
            found: dict[Hashable, list[Hashable]] = {}
            for key, copy in self._copies.items():
                if copy.asked_at >= since:
                    found.setdefault(copy.group, []).append(key)
        return found

    def offer(self, key: Hashable, *, group: Hashable, value: Any) -> None:
        """A value just read elsewhere in this process (a fill, a box, a transition): kept
        as a fresh copy unless the copy held is newer, so this process never serves an older
        one after it. A key without a copy is kept only while its group is in an outage
        here (the next outage's first round reads afresh anyway), first in line for
        eviction, and joins no batch until it is asked for."""
        with self._lock:
            now = self.clock()
            if key in self._copies:
                self._keep(key, group, value, now, prefetched=False)
                return
            state = self._groups.get(group)
            if state is None or state.last_round_at is None or (
                    now - state.last_round_at > self.interval() * PREFETCH_AFTER_IDLE_INTERVALS):
                return
            self._copies[key] = _Copy(group, value, now, asked_at=float("-inf"))
            self._copies.move_to_end(key, last=False)
            self._trim()

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._copies.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()
            self._groups.clear()

    def __len__(self) -> int:
        return len(self._copies)

    def _run(self, group: Hashable, state: _Group, round_: _Round, load_many: LoadMany,
             prefetch: Prefetch | None, interval: float) -> None:
        try:
            with state.querying:  # a round already querying finishes first; keys keep joining
                with self._lock:
                    if state.next_round is round_:
                        state.next_round = None  # who asks from now on waits for the next one
                    started = self.clock()
                    if not self._needing(round_.keys, started, interval):
                        # The query this round waited for loaded all its keys: serve those.
                        round_.values = {key: self._copies[key].value for key in round_.keys}
                        return
                    quiet = (state.last_round_at is None
                             or started - state.last_round_at
                             > interval * PREFETCH_AFTER_IDLE_INTERVALS)
                    state.last_round_at = started
                    wanted = round_.keys | self._asked_recently(group, started, interval)
                prefetched = dict(prefetch()) if prefetch is not None and quiet else {}
                missing = [key for key in wanted if key not in prefetched]
                loaded = {**prefetched, **(load_many(missing) if missing else {})}
                OUTAGE_QUERIES.labels(str(group)).inc(1 + bool(prefetched and missing))
                with self._lock:
                    for key in wanted | prefetched.keys():
                        self._keep(key, group, loaded.get(key), started,
                                   prefetched=key in prefetched)
                    # What was kept: a newer value offered while the query ran wins.
                    round_.values = {key: self._copies[key].value if key in self._copies
                                     else loaded.get(key) for key in round_.keys}
        except BaseException as exc:
            round_.error = exc
            raise
        finally:
            with self._lock:
                if state.next_round is round_:  # failed before its query: not joinable
                    state.next_round = None
            round_.done.set()

    def _needing(self, keys: set[Hashable], now: float, interval: float) -> set[Hashable]:
        """The keys without a copy younger than the interval."""
        return {key for key in keys
                if (copy := self._copies.get(key)) is None or now - copy.loaded_at >= interval}

    def _asked_recently(self, group: Hashable, now: float, interval: float) -> set[Hashable]:
        since = now - interval * ASKED_RECENTLY_INTERVALS
        return {key for key, copy in self._copies.items()
                if copy.group == group and copy.asked_at >= since}

    def _keep(self, key: Hashable, group: Hashable, value: Any, loaded_at: float, *,
              prefetched: bool) -> None:
        # A prefetched copy counts as asked now (a copy kept from an earlier outage too): it
        # stays in the batch for a while, so its first poll here finds it fresh instead of
        # starting a query of its own.
        copy = self._copies.get(key)
        if copy is None:
            self._copies[key] = _Copy(group, value, loaded_at, asked_at=loaded_at)
        else:
            if not self._older(value, loaded_at, than=copy):
                copy.value = value
            copy.loaded_at = max(copy.loaded_at, loaded_at)
            if prefetched:
                copy.asked_at = max(copy.asked_at, loaded_at)
        self._trim()

    def _older(self, value: Any, loaded_at: float, *, than: _Copy) -> bool:
        """Whether `value` (read at `loaded_at`) is older than the copy held: a lower version,
        or "names nothing" from a read that started before the copy was kept."""
        if self._version_of is None or than.value is None:
            return False
        if value is None:
            return loaded_at < than.loaded_at
        return self._version_of(value) < self._version_of(than.value)

    def _trim(self) -> None:
        while len(self._copies) > conf.settings().OUTAGE_COPY_MAX_ENTRIES:
            self._copies.popitem(last=False)


@dataclass
class _Read:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    failed: bool = False


class OncePerInterval(_Interval):
    """Reads a client can force (it names a version newer than this process holds), made at
    most once per key per interval: a read made within the interval answers again with what
    it found, and concurrent askers of a key share the read in flight. So a client naming a
    version that never existed costs one read per key per interval in a process, however
    often it asks. Bounded in keys, the oldest forgotten first."""

    def __init__(self, interval_setting: str, *, max_keys: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval_setting, clock)
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._reads: OrderedDict[Hashable, _Read] = OrderedDict()

    def read(self, keys: list[Hashable], load_many: LoadMany) -> tuple[dict[Hashable, Any],
                                                                         list[Hashable]]:
        """The value of each key (None: it names nothing) from its read within the interval,
        read now in one `load_many` for the keys without one; and the keys read now. A key
        whose shared read failed is left out (the leader's call raises)."""
        interval = self.interval()
        with self._lock:
            now = self.clock()
            reads: dict[Hashable, _Read] = {}
            mine: list[Hashable] = []
            for key in keys:
                found = self._reads.get(key)
                if found is None or (found.done.is_set() and now - found.started >= interval):
                    found = self._reads[key] = _Read(now)
                    self._reads.move_to_end(key)
                    mine.append(key)
                reads[key] = found
            while len(self._reads) > self._max_keys:
                self._reads.popitem(last=False)
        if mine:
            self._load(mine, reads, load_many)
        for found in reads.values():
            found.done.wait()
        return {key: found.value for key, found in reads.items() if not found.failed}, mine

    @staticmethod
    def _load(mine: list[Hashable], reads: dict[Hashable, _Read], load_many: LoadMany) -> None:
        try:
            loaded = load_many(mine)
            for key in mine:
                reads[key].value = loaded.get(key)
        except BaseException:
            for key in mine:
                reads[key].failed = True
            raise
        finally:
            for key in mine:
                reads[key].done.set()

    def clear(self) -> None:
        with self._lock:
            self._reads.clear()


# Job snapshots (None: no such job) read from the database while Redis is unavailable, one
# group per kind. Every snapshot this process reads from the database or commits is offered
# to them (`offer_snapshots`), newer version wins, so after a newer state this process
# never serves an older one.
job_snapshots = OutageCopies("OUTAGE_COPY_SECONDS", version_of=lambda snapshot: snapshot.version)


def offer_snapshots(snapshots: Iterable[Any]) -> None:
    """Job snapshots this process just read from the database or committed: its outage
    copies never serve an older one after them."""
    for snapshot in snapshots:
        job_snapshots.offer((snapshot.kind, snapshot.job_id), group=snapshot.kind,
                            value=snapshot)


# Principals (None: unknown) read from the database while Redis is unavailable, by key name,
# grouped by what names them (tokens, user ids).
principals = OutageCopies("PRINCIPAL_OUTAGE_COPY_SECONDS")
# Job reads forced by a client naming a newer version than this process would answer
# (`jobbox.newest`): one per job per outage-copy interval at most.
forced_reads = OncePerInterval("OUTAGE_COPY_SECONDS", max_keys=FORCED_READS_MAX_KEYS)
client.on_reset(forced_reads.clear)


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
