"""What the benchmark runs against: its database, a private Redis, and the servers.

Everything is on 127.0.0.1. The database `bench_db` is the benchmark's own (created afresh
each run); Redis is a private redis-server (process_tools.redis_server) because scenario 5
stops it, and the machine's Redis is shared. Each server is gunicorn serving bench.urls with
its own settings module and PostgreSQL `application_name`.

Serves docs/explanation/architecture.md, "Stack": PostgreSQL and Redis on 127.0.0.1.
"""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from academy import metrics_dir
from bench.pgstats import read_proc_cpu
from process_tools import free_port, stop_process

BASE_DIR = Path(__file__).resolve().parent.parent
# Two workers as in `make run` and the measurement in docs/explanation/architecture.md; threads let
# a slow answer not block the others (the same for every variant, so the comparison stays fair).
SERVER_WORKERS = 2
SERVER_THREADS = 4
# A Django server imports and answers /healthz in a few seconds; a loaded shared machine
# (load average 16 on 2 cores seen) starting several servers side by side gets room.
SERVER_START_TIMEOUT_SECONDS = 180.0
# Every connection the benchmark opens is named with this prefix (bench.pgstats counts them).
APP_PREFIX = "bench-"
SERVER_PREFIX = "bench-srv-"


def maintenance_dsn(database_url: str) -> str:
    """The same server's `postgres` database, where CREATE/DROP DATABASE run."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres"))


def database_name(database_url: str) -> str:
    name = urlsplit(database_url).path.lstrip("/")
    if not name or name == "test":
        raise ValueError("the benchmark needs its own database (never `test`)")
    return name


def recreate_database(database_url: str) -> None:
    """Drop and create the benchmark's database: every run starts from the same empty state."""
    name = database_name(database_url)
    with psycopg.connect(maintenance_dsn(database_url), autocommit=True,
                         application_name="bench-setup") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def quiet_autovacuum(database_url: str) -> list[str]:
    """Turn autovacuum off for the benchmark's own tables, then ANALYZE them once.

    Its visits would otherwise land in the counters of whichever phase they hit (a fresh
    database with new rows draws them within a minute); the planner still gets statistics.
    The launcher still looks in once a minute; the report flags phases where it did.
    """
    with psycopg.connect(database_url, autocommit=True, application_name="bench-setup") as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            conn.execute(sql.SQL(
                "ALTER TABLE {} SET (autovacuum_enabled = false, "
                "toast.autovacuum_enabled = false)").format(sql.Identifier(table)))
        conn.execute("ANALYZE")
    return tables


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(p) for p in text.split()]


@dataclass
class Server:
    """One server of bench.urls under a settings module: gunicorn (the lean sync path that
    serves polls), or uvicorn with the ASGI app (`asgi=True`: the job box's event stream)."""

    name: str
    settings_module: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    asgi: bool = False
    workers: int = SERVER_WORKERS
    # "sync": one request at a time per process, no keep-alive (bench.profile's CPU figure
    # on the lean stack the issue measured); every benchmark server otherwise is gthread.
    worker_class: str = "gthread"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def application_name(self) -> str:
        return f"{SERVER_PREFIX}{self.name}"

    def command(self) -> list[str]:
        if self.asgi:
            return [sys.executable, "-m", "uvicorn", "academy.asgi:application",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--workers", str(self.workers), "--log-level", "warning"]
        threads = ["--threads", str(SERVER_THREADS)] if self.worker_class == "gthread" else []
        return [sys.executable, "-m", "gunicorn", "academy.wsgi",
                "--config", str(BASE_DIR / "academy" / "gunicorn_conf.py"),
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                *threads, "--worker-class", self.worker_class, "--log-level", "warning"]

    def start(self, log_dir: Path) -> "Server":
        self.spawn(log_dir)
        self.wait_ready()
        return self

    def spawn(self, log_dir: Path) -> "Server":
        """Start the process without waiting (servers can then start side by side)."""
        self.log_path = log_dir / f"server-{self.name}.log"
        env = {**os.environ, **self.env, "DJANGO_SETTINGS_MODULE": self.settings_module,
               "BENCH_APPLICATION_NAME": self.application_name,
               # As the service runs: /metrics sums the workers (academy.metrics_dir).
               metrics_dir.ENV_VAR: str(metrics_dir.reset(log_dir / f"metrics-{self.name}"))}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=BASE_DIR, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server {self.name} did not start; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        """CPU the master and its workers have used so far."""
        pids = [self.process.pid, *self.worker_pids()] if self.process else []
        return sum(cpu for pid in pids if (cpu := read_proc_cpu(pid)) is not None)

    def workers_cpu_seconds(self) -> float:
        """CPU the workers alone have used so far (the master only supervises them)."""
        return sum(cpu for pid in self.worker_pids() if (cpu := read_proc_cpu(pid)) is not None)

    def stop(self) -> None:
        stop_process(self.process, grace_seconds=20)
