"""Prometheus metrics that add up across processes (docs/explanation/architecture.md, "What we
measured": counters live per process; a scrape must see the sum, not whichever process answered).

prometheus_client's multiprocess mode keeps each process's values in files under
`PROMETHEUS_MULTIPROC_DIR`; `/metrics` (jobbox.http.views.metrics_view) sums them. The
directory must be set before any process imports prometheus_client and emptied when the
server starts (files of an earlier run would add their totals). `make run` and the gunicorn
config (academy/gunicorn_conf.py) call `prepare()`; a deployment's process manager does the
same, or runs `python -m academy.metrics_dir DIR` before starting the server.
"""

import os
import shutil
import sys
from pathlib import Path

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def reset(path: Path) -> Path:
    """Empty (or create) a metrics directory: no process of an earlier run counts in it."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def prepare(default: Path) -> Path:
    """Empty the directory named by PROMETHEUS_MULTIPROC_DIR, else `default`, and set the
    variable for the processes this one starts (call it before starting them)."""
    path = reset(Path(os.environ.get(ENV_VAR) or default))
    os.environ[ENV_VAR] = str(path)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m academy.metrics_dir DIR", file=sys.stderr)
        sys.exit(2)
    print(reset(Path(sys.argv[1])))
