"""The fault injector: each fault kind, applied and cleared, with its times recorded."""

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Long enough that polls meet the fault (they come every fraction of a second), short
# enough that a 2-minute run fits every kind.
REDIS_DOWN_SECONDS = 4.0
REDIS_PAUSE_SECONDS = 5.0
POSTGRES_DOWN_SECONDS = 3.0
LATENCY_SECONDS = 8.0
# Added to every chunk between a web process and Redis: a slow network, under the client's
# 0.25 s socket timeout for a round trip or two, past it for a few.
ADDED_LATENCY_SECONDS = 0.1

# What the schedule injects in turn (a `redis_killed` also starts a web process while Redis is
# down: `web_started_while_redis_down`). On a cluster, a node killed is a master failed over.
FAULT_KINDS = ("redis_killed", "redis_paused", "postgres_restarted", "worker_killed",
               "web_killed", "redis_latency")
CLUSTER_FAULT_KINDS = ("master_failover", "redis_killed", "redis_paused",
                       "postgres_restarted", "worker_killed", "web_killed")
# Faults that make Redis unavailable or slow: the web processes read the database instead.
REDIS_FAULT_KINDS = ("redis_killed", "redis_paused", "redis_latency", "master_failover")
# After a Redis fault, the breaker's probe and the fallback copies' expiry end within this.
READS_SETTLE_SECONDS = 3.0


@dataclass
class FaultLog:
    faults: list[dict[str, Any]] = field(default_factory=list)

    def run(self, kind: str, apply: Callable[[], None], clear: Callable[[], None],
            hold_seconds: float) -> None:
        entry = {"kind": kind, "start": time.time()}
        try:
            apply()
            time.sleep(hold_seconds)
        finally:
            clear()
            entry["end"] = time.time()
            self.faults.append(entry)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for fault in self.faults:
            counted[fault["kind"]] = counted.get(fault["kind"], 0) + 1
        return counted


class Injector:
    """Applies one fault of a kind to the stack (`bench.soak.run.Stack`)."""

    def __init__(self, stack: Any, log: FaultLog) -> None:
        self.stack, self.log = stack, log

    def inject(self, kind: str) -> None:
        """Apply the fault; for a Redis fault, each web process's job-table reads across it
        are kept with the fault (the checker holds them to their budget)."""
        before = self.stack.job_reads()
        count = len(self.log.faults)
        getattr(self, kind)()
        if kind in REDIS_FAULT_KINDS:
            time.sleep(READS_SETTLE_SECONDS)
            after = self.stack.job_reads()
            for fault in self.log.faults[count:]:
                if fault["kind"] == kind:
                    fault["job_reads"] = {name: after[name] - before[name]
                                          for name in after if name in before}

    def redis_killed(self) -> None:
        """Redis killed; while it is down a web process is started (killed first: a fresh
        process makes its first Redis client during the outage); then Redis is back, empty."""
        entry = {"kind": "redis_killed", "start": time.time()}
        self.stack.redis_down()
        try:
            index = random.randrange(len(self.stack.webs))
            self.log.run("web_started_while_redis_down", lambda: self.stack.kill_web(index),
                         lambda: self.stack.start_web(index), 0.0)
            time.sleep(REDIS_DOWN_SECONDS)
        finally:
            self.stack.redis_up()
            entry["end"] = time.time()
            self.log.faults.append(entry)

    def redis_paused(self) -> None:
        self.log.run("redis_paused", self.stack.redis_pause, self.stack.redis_resume,
                     REDIS_PAUSE_SECONDS)

    def postgres_restarted(self) -> None:
        self.log.run("postgres_restarted", self.stack.pg.down, self.stack.pg.up,
                     POSTGRES_DOWN_SECONDS)

    def worker_killed(self) -> None:
        index = random.randrange(len(self.stack.workers))
        self.log.run("worker_killed", lambda: self.stack.kill_worker(index),
                     lambda: self.stack.start_worker(index), 0.5)

    def web_killed(self) -> None:
        index = random.randrange(len(self.stack.webs))
        self.log.run("web_killed", lambda: self.stack.kill_web(index),
                     lambda: self.stack.start_web(index), 1.0)

    def redis_latency(self) -> None:
        def add() -> None:
            self.stack.proxy.delay_seconds = ADDED_LATENCY_SECONDS

        def remove() -> None:
            self.stack.proxy.delay_seconds = 0.0

        self.log.run("redis_latency", add, remove, LATENCY_SECONDS)

    def master_failover(self) -> None:
        cluster = self.stack.cluster
        master = random.choice(cluster.master_ports())
        replica = cluster.replica_of(master)

        def fail_over() -> None:
            cluster.node(replica).execute_command("CLUSTER", "FAILOVER", "FORCE")

        def settled() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if cluster.node(replica).info("replication")["role"] == "master":
                    break
                time.sleep(0.1)
            cluster.wait_until_ok()

        self.log.run("master_failover", fail_over, settled, 0.0)


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
