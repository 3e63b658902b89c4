"""One measured phase: load from a separate process, counted by PostgreSQL and /proc.

`Harness.measure()` closes the servers' pooled connections (so every counter so far has
flushed), reads the counters, runs `python -m bench.load` with a spec, samples the CPU of
the backends serving the benchmark database, closes the connections again and reads the
counters once more. Known writes the harness itself made during the phase (the churn of
jobs starting and finishing) are subtracted with a footprint calibrated on an idle server.

Serves docs/explanation/architecture.md, "What we measured": statistics lag, persistent connections.
"""

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LoadSpec
from bench.pgstats import DatabaseCounters, Monitor, Phase
from bench.stack import BASE_DIR, Server
from bench.ticker import Ticker

# A load run is bounded by its spec; the process gets this much more before it is killed.
LOAD_PROCESS_GRACE_SECONDS = 240.0  # a shared machine at load 30 starves it for minutes
AUTH_TABLES = ("authtoken_token", "auth_user", "tenants_membership")


@dataclass
class Footprint:
    """Database work per unit of something the harness does itself (measured, then removed)."""

    job_reads: float = 0.0
    auth_reads: float = 0.0
    other_reads: float = 0.0
    transactions: float = 0.0


@dataclass
class PhaseRecord:
    scenario: str
    variant: str
    label: str
    window_seconds: float
    polls: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    achieved_rps: float = 0.0
    job_reads: float = 0.0
    auth_reads: float = 0.0
    other_reads: float = 0.0
    transactions: float = 0.0
    tup_fetched: int = 0
    backend_cpu_s: float | None = 0.0  # None: not measurable for this phase
    app_cpu_s: float = 0.0
    autovacuum: bool = False
    writer_steps: int = 0
    events: int = 0
    bytes_read: int = 0
    notes: list[str] = field(default_factory=list)
    timeline: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_reads(delta: DatabaseCounters, job_tables: tuple[str, ...]) -> Footprint:
    """Table scans of a counter delta, by job tables, auth tables and the rest."""
    job = delta.scans(job_tables)
    auth = delta.scans(AUTH_TABLES)
    total = sum(t.scans for t in delta.tables.values())
    return Footprint(job_reads=job, auth_reads=auth, other_reads=total - job - auth,
                     transactions=delta.xact_commit)


def subtract(measured: Footprint, *known: tuple[Footprint, float]) -> Footprint:
    """Measured work minus `count` times each known footprint, never below zero."""
    result = {}
    for name in ("job_reads", "auth_reads", "other_reads", "transactions"):
        value = getattr(measured, name) - sum(getattr(fp, name) * n for fp, n in known)
        result[name] = max(0.0, round(value, 1))
    return Footprint(**result)


LOAD_COMMAND = "python -m bench.load < spec.json   # one JSON spec per phase (bench/load.py)"


def close_own_connections() -> list[int]:
    """Close this thread's database connections; the PostgreSQL pids that served them.

    A backend flushes its pending counters as it exits, which takes a moment after the
    close: the caller waits for these pids to be gone before reading counters.
    """
    from django.db import connections

    pids = []
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is not None and conn.vendor == "postgresql":
            pids.append(int(raw.info.backend_pid))
        conn.close()
    return pids


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Run the load client as its own process and return its JSON result."""
    spec.validate()
    done = subprocess.run([sys.executable, "-m", "bench.load"], input=json.dumps(asdict(spec)),
                          capture_output=True, text=True, cwd=BASE_DIR, check=False,
                          timeout=spec.duration_seconds + LOAD_PROCESS_GRACE_SECONDS)
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


class Churn:
    """Jobs starting and finishing elsewhere while polls run: the writes an ORM cache sees."""

    def __init__(self, step: Callable[[], None], steps_per_second: float) -> None:
        self.step = step
        self.steps = 0
        self.backend_pids: list[int] = []  # the churn's connection, closed when it stops
        self._ticker = Ticker(self._step, 1.0 / steps_per_second, name="bench-churn",
                              on_exit=self._close)

    def _step(self) -> None:
        self.step()
        self.steps += 1

    def _close(self) -> None:
        self.backend_pids = close_own_connections()  # its backend flushes as it exits

    def __enter__(self) -> "Churn":
        self._ticker.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ticker.__exit__(*exc)


class Harness:
    def __init__(self, monitor: Monitor, job_tables: tuple[str, ...]) -> None:
        self.monitor = monitor
        self.job_tables = job_tables
        self.monitor_footprint = Footprint()
        self.churn_footprint = Footprint()
        # CPU seconds per second each server spends with no request (gunicorn's own loop).
        self.idle_app_cpu: dict[str, float] = {}
        self.commands: list[str] = []
        self.records: list[PhaseRecord] = []

    def run_load(self, spec: LoadSpec) -> dict[str, Any]:
        if LOAD_COMMAND not in self.commands:
            self.commands.append(LOAD_COMMAND)
        return run_load(spec)

    def calibrate(self, churn_step: Callable[[], None], steps: int,
                  servers: list[Server]) -> None:
        """The monitor's own work per phase, one churn step's, and each server's idle CPU."""
        # Set-up's pending counters (migrate, people) flush before anything is measured.
        self.monitor.wait_gone(close_own_connections())
        cpu0 = {s.name: s.cpu_seconds() for s in servers}
        started = time.perf_counter()
        with Phase(self.monitor) as idle:
            time.sleep(1.0)
        assert idle.result is not None
        elapsed = time.perf_counter() - started
        self.idle_app_cpu = {s.name: max(0.0, (s.cpu_seconds() - cpu0[s.name]) / elapsed)
                             for s in servers}
        self.monitor_footprint = split_reads(idle.result.delta, self.job_tables)
        with Phase(self.monitor) as busy:
            for _ in range(steps):
                churn_step()
            self.monitor.wait_gone(close_own_connections())
        assert busy.result is not None
        measured = subtract(split_reads(busy.result.delta, self.job_tables),
                            (self.monitor_footprint, 1))
        self.churn_footprint = Footprint(**{k: round(v / steps, 2)
                                            for k, v in asdict(measured).items()})

    def measure(
        self,
        scenario: str,
        variant: str,
        label: str,
        server: Server,
        spec: LoadSpec | None,
        *,
        during: Callable[[], None] | None = None,
        churn: Churn | None = None,
    ) -> PhaseRecord:
        """Run `spec` (and/or `during`) as one counted phase; the record is kept and returned."""
        # The driver's own pending counters flush before the phase begins.
        self.monitor.wait_gone(close_own_connections())
        app_cpu0 = server.cpu_seconds()
        started = time.perf_counter()
        result: dict[str, Any] = {}
        with Phase(self.monitor) as phase:
            if churn is not None:
                with churn:
                    result = self._drive(spec, during)
                self.monitor.wait_gone(churn.backend_pids)
            else:
                result = self._drive(spec, during)
        elapsed = time.perf_counter() - started
        assert phase.result is not None
        known = [(self.monitor_footprint, 1.0)]
        steps = churn.steps if churn else 0
        if steps:
            known.append((self.churn_footprint, float(steps)))
        work = subtract(split_reads(phase.result.delta, self.job_tables), *known)
        record = PhaseRecord(
            scenario=scenario, variant=variant, label=label,
            window_seconds=round(spec.duration_seconds if spec and spec.mode == "poll"
                                 else elapsed, 3),
            polls=int(result.get("requests", 0)), ok=int(result.get("ok", 0)),
            errors=result.get("errors", {}), latency_ms=result.get("latency_ms", {}),
            achieved_rps=float(result.get("achieved_rps", 0.0)),
            job_reads=work.job_reads, auth_reads=work.auth_reads, other_reads=work.other_reads,
            transactions=work.transactions, tup_fetched=phase.result.delta.tup_fetched,
            backend_cpu_s=round(phase.result.backend_cpu_seconds, 3),
            app_cpu_s=round(max(0.0, server.cpu_seconds() - app_cpu0
                                - self.idle_app_cpu.get(server.name, 0.0) * elapsed), 3),
            autovacuum=phase.result.autovacuum_seen, writer_steps=steps,
            events=int(result.get("events", 0)), bytes_read=int(result.get("bytes_read", 0)),
            timeline=result.get("timeline", []),
        )
        if phase.result.unexpected_backends:
            record.notes.append("other backends on the database: "
                                + ", ".join(phase.result.unexpected_backends))
        self.records.append(record)
        return record

    def _drive(self, spec: LoadSpec | None, during: Callable[[], None] | None) -> dict[str, Any]:
        if spec is None:
            if during:
                during()
            return {}
        if during is None:
            return self.run_load(spec)
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: box.update(self.run_load(spec)), daemon=True)
        thread.start()
        try:
            during()
        finally:
            thread.join()
        return box
