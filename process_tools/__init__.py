"""Child processes started and stopped one way, and the one wait loop.

The service (`make run`, its embedded Redis), the benchmark and every test layer start child
processes (redis-server, uvicorn, gunicorn, Celery workers) and must stop them without leaving
one behind. This package sits beside `jobbox` and `academy` rather than inside either: the
library starts no process of its own, and the library's tests must be able to use it without
importing the service.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# A server we started exits on SIGTERM within a second or two; a Celery worker finishing its
# task or uvicorn closing its connections needs longer on a busy machine, so callers with such
# children pass more. After the grace period the child is killed: nothing is ever left behind.
STOP_GRACE_SECONDS = 10.0
# How often `wait_until` asks again by default: short beside any start-up we wait for.
POLL_INTERVAL_SECONDS = 0.05


def stop_process(process: subprocess.Popen | None, *,
                 grace_seconds: float = STOP_GRACE_SECONDS) -> int | None:
    """Terminate `process`, wait up to `grace_seconds`, then kill it; its exit status (None
    for no process)."""
    if process is None:
        return None
    stop_processes([process], grace_seconds=grace_seconds)
    return process.returncode


def stop_processes(processes: Iterable[subprocess.Popen], *,
                   grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """Stop several children together: all are asked to stop first, so they wind down in
    parallel, then each is waited for (and killed if it outstays the grace period)."""
    processes = list(processes)
    # Asked before any wait reaps them: a child started with `start_new_session=True` leads
    # a process group holding whatever it started (a Celery worker's pool and embedded beat,
    # uvicorn's workers).
    group_leaders = [process for process in processes if _leads_a_group(process)]
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for leader in group_leaders:
        # What the leader started and left behind (it was killed, or died) goes too: no
        # orphan lives on. The group id cannot be reused while any member is alive.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)


def _leads_a_group(process: subprocess.Popen) -> bool:
    if process.returncode is not None:
        return False  # reaped already: its pid may name another process by now
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def wait_until(condition: Callable[[], T], *, timeout_seconds: float,
               interval_seconds: float = POLL_INTERVAL_SECONDS) -> T:
    """The first truthy value of `condition()`, asked every interval; after the timeout, its
    last (falsy) value, for the caller to assert on or raise about."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_seconds)
    return condition()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
