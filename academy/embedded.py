"""The embedded default's Redis: a private redis-server from a pip-installed binary.

`make run` and `make test` use it when `REDIS_URL` is unset, so a fresh machine needs nothing
installed by hand. `python -m academy.embedded -- CMD ...` runs CMD with
`REDIS_URL` pointing at a private server that lives as long as CMD; the server itself is
`process_tools.redis_server.RedisServer`.
"""

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

# The private server lives beside the process helpers, where the library's own tests can
# start one too.
from process_tools.redis_server import RedisServer

URL_FILE_NAME = "redis.url"
# `make run` holds an exclusive lock on this file while it runs (the kernel drops it when the
# process dies, however it dies), and describes itself in the state file beside it.
LOCK_FILE_NAME = "run.lock"
STATE_FILE_NAME = "run.json"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
# Moves `make run`'s lock and state away from `.run/` (the tests run instances in a tmp dir).
RUN_DIR_VARIABLE = "JOBBOX_RUN_DIR"


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
