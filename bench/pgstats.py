"""Database work as PostgreSQL itself counts it (docs/explanation/
architecture.md, "What we measured").

pg_stat_statements is not loaded on the shared server and it may not be restarted, so the
benchmark reads:
- `pg_stat_user_tables` of the benchmark database: scans (seq + idx) and rows per table;
- `pg_stat_database`: committed transactions (in autocommit, one per statement) and tuples;
- `/proc/<pid>/stat` of every backend serving the benchmark database: CPU seconds.

PostgreSQL 15 flushes a busy backend's counters at most once a second and an idle one's
about 10 s after its last statement. A measured phase therefore ends by closing the
benchmark's own connections (a backend flushes everything as it exits), and the run ends
with an 11 s idle read that must show no late arrivals. Autovacuum's visits are recorded
apart, from its own counters and `pg_stat_activity`.
"""

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields

import psycopg
from psycopg.rows import dict_row

from bench.ticker import Ticker

# Each backend exits within milliseconds of being told to; a slow shared machine gets room.
BACKEND_EXIT_TIMEOUT_SECONDS = 10.0
# How often backend CPU is sampled: a backend that closes between samples loses at most this.
CPU_SAMPLE_INTERVAL_SECONDS = 0.5
# PostgreSQL 15 sends an idle backend's pending counters ~10 s after its last statement.
STATS_IDLE_FLUSH_SECONDS = 11.0
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

TABLE_COUNTER_NAMES = (
    "seq_scan", "idx_scan", "seq_tup_read", "idx_tup_fetch",
    "n_tup_ins", "n_tup_upd", "n_tup_del", "autovacuum_count", "autoanalyze_count",
)
DATABASE_COUNTER_NAMES = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched")


@dataclass(frozen=True)
class TableCounters:
    seq_scan: int = 0
    idx_scan: int = 0
    seq_tup_read: int = 0
    idx_tup_fetch: int = 0
    n_tup_ins: int = 0
    n_tup_upd: int = 0
    n_tup_del: int = 0
    autovacuum_count: int = 0
    autoanalyze_count: int = 0

    @property
    def scans(self) -> int:
        """Times the table was read (each SELECT touching it scans it once here)."""
        return self.seq_scan + self.idx_scan

    def minus(self, other: "TableCounters") -> "TableCounters":
        return TableCounters(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                                for f in fields(self)})


@dataclass(frozen=True)
class DatabaseCounters:
    xact_commit: int = 0
    xact_rollback: int = 0
    tup_returned: int = 0
    tup_fetched: int = 0
    tables: Mapping[str, TableCounters] = field(default_factory=dict)

    def minus(self, other: "DatabaseCounters") -> "DatabaseCounters":
        """Counter delta; a table absent on one side counts from zero."""
        names = set(self.tables) | set(other.tables)
        return DatabaseCounters(
            **{n: getattr(self, n) - getattr(other, n) for n in DATABASE_COUNTER_NAMES},
            tables={n: self.tables.get(n, TableCounters()).minus(
                other.tables.get(n, TableCounters())) for n in sorted(names)},
        )

    def scans(self, tables: tuple[str, ...]) -> int:
        return sum(self.tables[n].scans for n in tables if n in self.tables)

    def autovacuum_visits(self) -> int:
        return sum(t.autovacuum_count + t.autoanalyze_count for t in self.tables.values())


def counters_from_rows(
    database_row: Mapping[str, object], table_rows: list[Mapping[str, object]]
) -> DatabaseCounters:
    """Build counters from `pg_stat_database` and `pg_stat_user_tables` rows (NULL → 0)."""
    return DatabaseCounters(
        **{n: int(database_row.get(n) or 0) for n in DATABASE_COUNTER_NAMES},  # type: ignore[call-overload]
        tables={
            str(row["relname"]): TableCounters(
                **{n: int(row.get(n) or 0) for n in TABLE_COUNTER_NAMES}  # type: ignore[call-overload]
            )
            for row in table_rows
        },
    )


def proc_cpu_seconds(stat_text: str) -> float:
    """utime + stime of a `/proc/<pid>/stat` line, in seconds.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so the
    fields are counted from the last ')'.
    """
    after_name = stat_text[stat_text.rindex(")") + 2:].split()
    # after_name[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS_PER_SECOND


def machine_busy_share(seconds: float) -> float:
    """The share of the machine's CPU time (all cores, /proc/stat) not idle over `seconds`."""
    def totals() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # idle + iowait

    total0, idle0 = totals()
    time.sleep(seconds)
    total1, idle1 = totals()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def read_proc_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return proc_cpu_seconds(handle.read())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU seconds a changing set of processes spent between `start()` and `stop()`.

    A process first seen after `start()` counts from zero (it was born in the window); one
    that vanished counts up to its last sample.
    """

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def observe(self, pids: list[int], *, baseline: bool = False) -> None:
        for pid in pids:
            cpu = read_proc_cpu(pid)
            if cpu is None:
                continue
            if pid not in self.first:
                self.first[pid] = cpu if baseline else 0.0
            self.last[pid] = cpu

    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


@dataclass
class ActivitySample:
    pids: list[int]
    autovacuum_seen: bool
    unexpected: list[str]


class Monitor:
    """Reads the counters of one database from separate connections of its own."""

    def __init__(self, dsn: str, database: str, app_prefix: str, server_prefix: str) -> None:
        self.dsn = dsn  # a libpq conninfo for the maintenance database (postgres)
        self.database = database
        self.app_prefix = app_prefix  # every benchmark connection: its CPU is counted
        self.server_prefix = server_prefix  # the servers' pooled connections: closed to flush
        self._activity = psycopg.connect(dsn, autocommit=True, row_factory=dict_row,
                                         application_name="bench-monitor")

    def close(self) -> None:
        self._activity.close()

    def counters(self) -> DatabaseCounters:
        """One statement on a fresh connection, closed at once so its own counts flush."""
        with psycopg.connect(self.dsn, dbname=self.database, autocommit=True,
                             row_factory=dict_row, application_name="bench-monitor") as conn:
            row = conn.execute(
                "SELECT (SELECT row_to_json(d) FROM pg_stat_database d "
                "        WHERE d.datname = current_database()) AS db, "
                "       (SELECT coalesce(json_agg(t), '[]') FROM pg_stat_user_tables t) AS tables"
            ).fetchone()
        assert row is not None
        return counters_from_rows(row["db"] or {}, row["tables"])

    def activity(self) -> ActivitySample:
        rows = self._activity.execute(
            "SELECT pid, application_name, backend_type, state FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", [self.database]
        ).fetchall()
        pids, unexpected, autovacuum = [], [], False
        for row in rows:
            name = row["application_name"] or ""
            if row["backend_type"] == "autovacuum worker":
                autovacuum = True
            elif name.startswith(self.app_prefix):
                pids.append(int(row["pid"]))
            elif name != "bench-monitor":
                unexpected.append(f"{row['backend_type']}:{name or '?'}")
        return ActivitySample(pids=pids, autovacuum_seen=autovacuum, unexpected=unexpected)

    def wait_gone(self, pids: list[int]) -> None:
        """Wait until these backends have exited (and so flushed their counters)."""
        deadline = time.monotonic() + BACKEND_EXIT_TIMEOUT_SECONDS
        while pids and time.monotonic() < deadline:
            left = self._activity.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()
            if not left or not left["n"]:
                return
            time.sleep(0.02)

    def close_app_backends(self, *, idle_for_seconds: float = 0.0) -> int:
        """End the servers' idle connections so their pending counters flush now.

        Django reconnects on the next request (CONN_HEALTH_CHECKS); the one connect per
        server thread this costs lands in the next phase and is counted there. Under load,
        `idle_for_seconds` spares connections used a moment ago: one idle that long is not
        in the middle of a request, so no request loses its connection.
        """
        rows = self._activity.execute(
            "SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE %s AND state = 'idle' "
            "AND state_change < clock_timestamp() - make_interval(secs => %s)",
            [self.database, self.server_prefix + "%", idle_for_seconds],
        ).fetchall()
        pids = [int(row["pid"]) for row in rows if row["ended"]]
        self.wait_gone(pids)
        return len(pids)


@dataclass
class PhaseCounts:
    """What the database did during one measured phase."""

    delta: DatabaseCounters
    backend_cpu_seconds: float
    backends_seen: int
    autovacuum_seen: bool
    unexpected_backends: list[str]


class Phase:
    """Counts one phase: flush and read before, sample backend CPU during, flush and read after."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.meter = CpuMeter()
        self.autovacuum = False
        self.unexpected: set[str] = set()
        self._sampler = Ticker(self._sample, CPU_SAMPLE_INTERVAL_SECONDS, name="bench-cpu")
        self._start: DatabaseCounters | None = None
        self.end: DatabaseCounters | None = None
        self.result: PhaseCounts | None = None

    def _sample(self, *, baseline: bool = False) -> None:
        sample = self.monitor.activity()
        self.autovacuum |= sample.autovacuum_seen
        self.unexpected.update(sample.unexpected)
        self.meter.observe(sample.pids, baseline=baseline)

    def __enter__(self) -> "Phase":
        self.monitor.close_app_backends()
        self._start = self.monitor.counters()
        self._sample(baseline=True)
        self._sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampler.__exit__(*exc)
        self._sample()
        self.monitor.close_app_backends()
        end = self.end = self.monitor.counters()
        assert self._start is not None
        self.result = PhaseCounts(
            delta=end.minus(self._start),
            backend_cpu_seconds=self.meter.seconds(),
            backends_seen=len(self.meter.last),
            autovacuum_seen=self.autovacuum or end.minus(self._start).autovacuum_visits() > 0,
            unexpected_backends=sorted(self.unexpected),
        )


@contextlib.contextmanager
def measured(monitor: Monitor) -> Iterator[Phase]:
    with Phase(monitor) as phase:
        yield phase
