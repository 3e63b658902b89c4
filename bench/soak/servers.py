"""The soak's private servers: a PostgreSQL cluster in a temporary directory, a redis-server
that can be killed, paused and started again empty on the same port, and a TCP proxy that
adds latency between the web processes and Redis. All on 127.0.0.1; the machine's own
PostgreSQL and Redis (which other work shares) are never touched."""

import asyncio
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import redis

from process_tools import free_port


def _postgres_bin() -> Path:
    # Debian installs each major version's tools beside the others; the newest is used.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_bin()
# initdb and a first start take a few seconds; a loaded shared machine gets room.
PG_START_TIMEOUT_SECONDS = 120
REDIS_START_TIMEOUT_SECONDS = 30


def _as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root: its tools run as the `postgres` user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (Debian's initdb and pg_ctl) on a free port."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "pgdata"
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self.root = root

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/soak"

    def start(self) -> "PrivatePostgres":
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U",
                                    "postgres", "--auth=trust", "-E", "UTF8"),
                       check=True, capture_output=True, timeout=PG_START_TIMEOUT_SECONDS)
        self.up()
        subprocess.run(_as_postgres(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p",
                                    str(self.port), "-U", "postgres", "-c",
                                    "CREATE DATABASE soak"),
                       check=True, capture_output=True, timeout=PG_START_TIMEOUT_SECONDS)
        return self

    def up(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c fsync=off -c max_connections=200")
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-o",
                                    options, "-l", str(self.log_path), "-w", "-t",
                                    str(PG_START_TIMEOUT_SECONDS), "start"),
                       check=True, capture_output=True, timeout=PG_START_TIMEOUT_SECONDS + 10)

    def down(self) -> None:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m",
                                    "fast", "-w", "stop"),
                       check=False, capture_output=True, timeout=PG_START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self.data_dir.exists():
            self.down()


class PrivateRedis:
    """One redis-server on a fixed port, nothing saved: killed, it comes back empty."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> "PrivateRedis":
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_SECONDS
        while True:
            try:
                self.client().ping()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=10)


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that forwards to a target port and delays each chunk by
    `delay_seconds` (set at any time): added latency between web processes and Redis."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.delay_seconds = 0.0
        # Each open upstream connection's local port -> its client's port: who holds a
        # connection Redis lists (its CLIENT LIST shows the proxy's address).
        self.client_ports: dict[int, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> "LatencyProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        upstream_port = up_writer.get_extra_info("sockname")[1]
        self.client_ports[upstream_port] = writer.get_extra_info("peername")[1]
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                                 return_exceptions=True)
        finally:
            self.client_ports.pop(upstream_port, None)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.delay_seconds:
                    await asyncio.sleep(self.delay_seconds)
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        # The listener closes; the loop's thread is a daemon and ends with the run (stopping
        # the loop under open pipes would only print their tasks' complaints).
        self._loop.call_soon_threadsafe(self._server.close)
