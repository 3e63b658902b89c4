"""Tasks the contrib tests enqueue (importable by a worker process: `tests.contrib.tasks`)."""

import time
from pathlib import Path
from typing import Any

from jobbox.contrib.tasks import report_task_progress
from jobbox.contrib.tasks.framework import module

task = module().task
# A gated task waits at most this long for its gate file: a test that never opens it fails
# on its own timeout, and the worker process still ends.
GATE_WAIT_SECONDS = 120
GATE_CHECK_SECONDS = 0.05


@task(takes_context=True)
def count_to(context: Any, n: int) -> dict[str, Any]:
    """Reports progress at every step; returns whether each report was recorded."""
    recorded = [report_task_progress(context, percent=100 * i / n, step_index=i, step_total=n,
                                     step_name="counting")
                for i in range(1, n + 1)]
    return {"counted": n, "recorded": recorded}


@task(takes_context=True)
def half_then_wait(context: Any, gate: str) -> str:
    """Reports 50 %, then waits until the file `gate` exists (the test opens it)."""
    report_task_progress(context, percent=50, step_index=1, step_total=2, step_name="waiting")
    deadline = time.monotonic() + GATE_WAIT_SECONDS
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(GATE_CHECK_SECONDS)
    return "released"


@task()
def fail_with_secret() -> None:
    raise ValueError("db password is hunter2")


@task()
def enqueue_a_helper() -> str:
    """Enqueues another task with plain `enqueue` (run at once by the immediate backend)."""
    return str(count_to.enqueue(1).id)
