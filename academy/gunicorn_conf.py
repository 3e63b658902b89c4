"""gunicorn settings for the reference service: metrics summed across workers.

`gunicorn -c academy/gunicorn_conf.py academy.wsgi`: when PROMETHEUS_MULTIPROC_DIR is set,
the directory is emptied as the master starts (before any worker writes to it) and a worker
that exits is marked dead, so its live gauges (open streams, breaker state) leave the sums
while its counters keep counting in them (academy.metrics_dir).
"""

import os
from pathlib import Path
from typing import Any

from academy.metrics_dir import ENV_VAR, reset


def on_starting(server: Any) -> None:
    if os.environ.get(ENV_VAR):
        reset(Path(os.environ[ENV_VAR]))


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(ENV_VAR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# gunicorn trusts forwarding headers from 127.0.0.1 by default; the proxy in front is named
# explicitly (FORWARDED_ALLOW_IPS), or none is trusted (docs/how-to/security.md).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
