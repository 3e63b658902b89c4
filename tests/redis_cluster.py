"""A local Redis Cluster for the tests: 3 masters (and replicas) on random free ports, made
with the machine's `redis-server --cluster-enabled yes` and `redis-cli --cluster create`
(docs/explanation/invariants.md, invariant 12: the tests prove cluster safety on a real three-master
cluster).

`JOBBOX_TEST_REDIS_CLUSTER=1` runs the core suites on one (`tests/service/conftest.py`); `make
test-cluster` does that, and `tests/e2e/test_redis_cluster.py` starts its own either way.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.cluster

from process_tools import free_port, stop_processes, wait_until

# Nodes agree on a failed master after this long (Redis's default is 15 s; a test waits).
NODE_TIMEOUT_MS = 1000
# Six processes start and gossip in a few seconds here; a loaded shared machine gets room.
START_TIMEOUT_SECONDS = 60
# Ports are chosen free, then bound by redis-server: another process may take one between.
START_ATTEMPTS = 5


def cluster_mode() -> bool:
    """The core suites run on a local cluster (set by `make test-cluster`)."""
    return os.environ.get("JOBBOX_TEST_REDIS_CLUSTER") == "1"


def cluster_capable_server() -> str | None:
    """The machine's redis-server if it is 7 or newer (sharded pub/sub), else None."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("redis-cli") is None:
        return None
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    major = version.split("v=", 1)[1].split(".", 1)[0] if "v=" in version else "0"
    return binary if major.isdigit() and int(major) >= 7 else None


class LocalCluster:
    """`masters` masters with `replicas` replicas each, on 127.0.0.1; nothing saved."""

    def __init__(self, *, masters: int = 3, replicas: int = 1) -> None:
        self.masters, self.replicas = masters, replicas
        self.ports = [0] * (masters * (1 + replicas))
        self.data_dir = Path(tempfile.mkdtemp(prefix="jobbox-cluster-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster.from_url(self.url)

    def start(self) -> "LocalCluster":
        binary = cluster_capable_server()
        assert binary, "redis-server 7+ and redis-cli are needed for a local cluster"
        self.ports = [self.start_node(binary) for _ in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=START_TIMEOUT_SECONDS)
        self.wait_until_ok()
        return self

    def start_node(self, binary: str) -> int:
        """A new node on a free port; another port if that one was taken meanwhile."""
        for _ in range(START_ATTEMPTS):
            port = free_port()
            if self._start_node(binary, port):
                return port
        raise RuntimeError("no cluster node could start")

    def _start_node(self, binary: str, port: int) -> bool:
        self.processes[port] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.data_dir / f"nodes-{port}.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "",
             # The bus port defaults to port + 10000, past 65535 for a high random port.
             "--cluster-port", str(free_port()),
             "--appendonly", "no", "--dir", str(self.data_dir), "--protected-mode", "no",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                self.node(port).ping()
                return True
            except redis.exceptions.ConnectionError:
                if self.processes[port].poll() is not None:
                    del self.processes[port]  # a port taken since free_port() chose it
                    return False
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} did not start") from None
                time.sleep(0.05)

    def wait_until_ok(self, ports: list[int] | None = None) -> None:
        """Every live node says `cluster_state:ok` and sees every slot served."""
        live = ports or [p for p, proc in self.processes.items() if proc.poll() is None]

        def all_ok() -> bool:
            return all(self.node(port).cluster("INFO").get("cluster_state") == "ok"
                       for port in live)

        if not wait_until(all_ok, timeout_seconds=START_TIMEOUT_SECONDS, interval_seconds=0.1):
            raise RuntimeError("the local cluster did not reach cluster_state:ok")

    def master_ports(self) -> list[int]:
        return [p for p in self.processes if self.processes[p].poll() is None
                and self.node(p).info("replication")["role"] == "master"]

    def replica_of(self, master_port: int) -> int:
        for port, process in self.processes.items():
            if process.poll() is not None or port == master_port:
                continue
            info = self.node(port).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master_port:
                return port
        raise LookupError(f"no replica of {master_port}")

    def flush(self) -> None:
        for port in self.master_ports():
            self.node(port).flushall()

    def stop(self) -> None:
        stop_processes(self.processes.values())
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
