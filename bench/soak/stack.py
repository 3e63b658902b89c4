"""The soak's stack: private PostgreSQL and Redis (or a local Redis Cluster), a latency proxy
in front of Redis, web processes (uvicorn: polls, boxes and streams), Celery workers and beat
(the reconciler and the reapers), each one that a fault can kill and start again."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.soak.faults import kill
from bench.soak.servers import LatencyProxy, PrivatePostgres, PrivateRedis
from bench.stack import BASE_DIR, Server

METRICS_TOKEN = "soak-scraper"
# `jobbox_reads_total` sources that read the job's table (one row each).
JOB_TABLE_SOURCES = ("db_fill", "db_fallback", "not_found")
# A worker imports Django and reaches its broker in a few seconds; a loaded machine gets room.
WORKER_START_SECONDS = 5.0


def _tally(names: Iterable[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for name in names:
        counted[name] = counted.get(name, 0) + 1
    return counted


def _pids_by_local_port() -> dict[int, int]:
    """Each established TCP connection's local port on 127.0.0.1 -> the pid holding it."""
    listed = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                            text=True, check=False).stdout
    owners: dict[int, int] = {}
    for line in listed.splitlines():
        fields, pid = line.split(), re.search(r"pid=(\d+)", line)
        if len(fields) >= 3 and pid:
            owners[int(fields[2].rsplit(":", 1)[1])] = int(pid.group(1))
    return owners


def _is_job_table_read(sample: str) -> bool:
    if sample.startswith("jobbox_reads_total{"):
        return any(f'source="{source}"' in sample for source in JOB_TABLE_SOURCES)
    if sample.startswith("jobbox_outage_queries_total{"):
        return any(f'group="{kind}"' in sample for kind in ("video", "ai_job"))
    return False


class Stack:
    def __init__(self, root: Path, *, cluster: bool) -> None:
        from bench.soak.run import STACK_ENV, WEB_PROCESSES, WORKERS

        self.root, self.cluster_mode = root, cluster
        self.pg = PrivatePostgres(root / "pg")
        self.redis = PrivateRedis(root / "redis")
        self.broker = PrivateRedis(root / "broker")
        self.proxy: LatencyProxy | None = None
        self.cluster: Any = None
        self.env: dict[str, str] = dict(STACK_ENV)
        self.webs: list[Server] = []
        self.web_count, self.worker_count = WEB_PROCESSES, WORKERS
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beat: subprocess.Popen[bytes] | None = None
        self.logs = root / "logs"

    # --- start and stop ---

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pg.start()
        self.broker.start()
        if self.cluster_mode:
            from tests.redis_cluster import LocalCluster

            self.cluster = LocalCluster(masters=3, replicas=1).start()
            redis_url = self.cluster.url
        else:
            self.redis.start()
            self.proxy = LatencyProxy(self.redis.port).start()
            redis_url = f"redis://127.0.0.1:{self.proxy.port}/0"
        media = self.root / "media"
        media.mkdir()
        self.env.update(DATABASE_URL=self.pg.url, REDIS_URL=redis_url,
                        CELERY_BROKER_URL=self.broker.url, MEDIA_ROOT=str(media),
                        METRICS_TOKEN=METRICS_TOKEN,
                        REDIS_CLUSTER="1" if self.cluster_mode else "")
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.webs = [Server(f"soak-web-{n}", "academy.settings", dict(self.env), asgi=True,
                            workers=1) for n in range(self.web_count)]
        for web in self.webs:
            web.spawn(self.logs)
        for web in self.webs:
            web.wait_ready()
        self.workers = [self._spawn_worker(n) for n in range(self.worker_count)]
        self.beat = self._spawn(["-m", "celery", "-A", "academy", "beat", "--loglevel",
                                 "WARNING", "--schedule", str(self.root / "beat-schedule")],
                                "beat")
        time.sleep(WORKER_START_SECONDS)

    def stop(self) -> None:
        for process in [*self.workers, *([self.beat] if self.beat else [])]:
            if process.poll() is None:
                process.terminate()
        for web in self.webs:
            web.stop()
        for process in [*self.workers, *([self.beat] if self.beat else [])]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill(process)
        if self.proxy:
            self.proxy.stop()
        if self.cluster:
            self.cluster.stop()
        self.redis.stop()
        self.broker.stop()
        self.pg.stop()

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        return subprocess.Popen([sys.executable, *args], cwd=BASE_DIR,
                                env={**os.environ, **self.env}, stdout=log,
                                stderr=subprocess.STDOUT)

    def _spawn_worker(self, index: int) -> subprocess.Popen[bytes]:
        return self._spawn(["-m", "celery", "-A", "academy", "worker", "--pool", "solo",
                            "--loglevel", "WARNING", "--hostname", f"soak-{index}@localhost",
                            "--without-gossip", "--without-mingle"], f"worker-{index}")

    def bases(self) -> list[str]:
        return [web.base_url for web in self.webs]

    # --- what faults do ---

    def redis_down(self) -> None:
        if self.cluster:
            # A master killed: its replica is promoted once the others agree it failed.
            self._killed = self.cluster.master_ports()[0]
            kill(self.cluster.processes[self._killed])
            return
        self.redis.kill()

    def redis_up(self) -> None:
        if self.cluster:
            self._cluster_back_empty()
            return
        self.redis.start()

    def _cluster_back_empty(self) -> None:
        # Back empty, as after losing the data: once the replica took over, every master is
        # flushed, and the killed node starts again on its port (its nodes.conf kept: it
        # rejoins as the new master's replica).
        live = [p for p, proc in self.cluster.processes.items() if proc.poll() is None]
        self.cluster.wait_until_ok(live)
        for port in self.cluster.master_ports():
            self.cluster.node(port).flushall()
        del self.cluster.processes[self._killed]
        if not self.cluster._start_node("redis-server", self._killed):
            raise RuntimeError(f"cluster node {self._killed} did not come back")
        self.cluster.wait_until_ok()

    def redis_pause(self) -> None:
        if self.cluster:
            # A master stopped longer than the node timeout: its replica takes over, and it
            # comes back as a replica.
            self._paused = self.cluster.master_ports()[0]
            self.cluster.processes[self._paused].send_signal(signal.SIGSTOP)
            return
        self.redis.pause()

    def redis_resume(self) -> None:
        if self.cluster:
            self.cluster.processes[self._paused].send_signal(signal.SIGCONT)
            self.cluster.wait_until_ok()
            return
        self.redis.resume()

    def kill_web(self, index: int) -> None:
        web = self.webs[index]
        if web.process:
            for pid in web.worker_pids():
                os.kill(pid, 9)
            kill(web.process)

    def start_web(self, index: int) -> None:
        old = self.webs[index]
        if old.log_path and old.log_path.exists():
            # The killed process's log is kept: a new one is written from the start.
            pid = old.process.pid if old.process else 0
            old.log_path.rename(old.log_path.with_suffix(f".{pid}.log"))
        self.webs[index] = Server(old.name, old.settings_module, old.env, port=old.port,
                                  asgi=True, workers=1).start(self.logs)

    def kill_worker(self, index: int) -> None:
        kill(self.workers[index])

    def start_worker(self, index: int) -> None:
        self.workers[index] = self._spawn_worker(index)

    # --- figures ---

    def job_reads(self) -> dict[str, float]:
        """Each live web process's job-table reads so far (by its pid: a process started
        again counts from zero): single reads (fills, fallbacks, ids that name nothing) and
        the outage's batch reads."""
        reads: dict[str, float] = {}
        for web in self.webs:
            text = self._metrics(web)
            if text is None or web.process is None:
                continue
            total = sum(float(line.split()[-1]) for line in text.splitlines()
                        if _is_job_table_read(line))
            reads[f"{web.name}:{web.process.pid}"] = total
        return reads

    def _metrics(self, web: Server) -> str | None:
        request = urllib.request.Request(web.base_url + "/metrics", headers={
            "Authorization": f"Bearer {METRICS_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.read().decode()
        except OSError:
            return None

    def _process_names(self) -> dict[int, str]:
        names = {os.getpid(): "soak runner"}
        for web in self.webs:
            if web.process:
                for pid in [web.process.pid, *web.worker_pids()]:
                    names[pid] = web.name
        for index, worker in enumerate(self.workers):
            names[worker.pid] = f"worker-{index}"
        if self.beat:
            names[self.beat.pid] = "beat"
        return names

    def _connections_allowed(self) -> dict[str, int]:
        """The Redis connections each live process of the stack may hold: its sync pool's cap;
        a web process also its streams' async pool and pub/sub connection; this process also
        the check's own."""
        cap = int(self.env["JOBBOX_REDIS_MAX_CONNECTIONS"])
        allowed = dict.fromkeys(set(self._process_names().values()), cap)
        allowed.update({web.name: cap + 2 for web in self.webs})
        allowed["soak runner"] = cap + 1
        return allowed

    def _owners(self, listed: list[dict[str, Any]]) -> list[str]:
        """The stack's process behind each connection Redis lists: through the proxy, its
        client's port names it; a connection of a process the stack no longer knows is
        named by its pid."""
        assert self.proxy is not None
        pids, names = _pids_by_local_port(), self._process_names()
        owners = []
        for client in listed:
            port = int(client["addr"].rsplit(":", 1)[1])
            via_proxy = self.proxy.client_ports.get(port)
            pid = pids.get(via_proxy if via_proxy is not None else port)
            owners.append(names.get(pid, f"pid {pid}") if pid else "unknown")
        return owners

    def figures(self) -> dict[str, Any]:
        """Redis memory and connections, and streams open in the web processes."""
        figures: dict[str, Any] = {"streams_open": 0}
        if not self.cluster:
            client = self.redis.client()
            info, listed = client.info(), client.client_list()
            figures["redis_connections"] = int(info["connected_clients"])
            # What the connections last did (a pool's idle ones, subscribers, this check) and
            # which process holds them, against what each may hold.
            figures["redis_connections_by_last_command"] = _tally(c["cmd"] for c in listed)
            figures["redis_connections_by_process"] = _tally(self._owners(listed))
            figures["redis_connections_allowed"] = self._connections_allowed()
            figures["redis_memory_bytes"] = int(info["used_memory"])
            client.close()
        for web in self.webs:
            text = self._metrics(web)
            for line in (text or "").splitlines():
                if line.startswith("jobbox_streams_open"):
                    figures["streams_open"] += int(float(line.split()[-1]))
        return figures
