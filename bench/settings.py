"""Settings of the benchmark's servers: the reference service plus the baseline views.

Imports academy.settings unchanged (so "jobbox" is the service exactly as shipped) and only adds the
baseline URLs (bench.urls) and a PostgreSQL `application_name` per server, so the benchmark can find
the backends serving it in `pg_stat_activity` (docs/explanation/architecture.md, "What we
measured").
"""

import os

from academy.settings import *  # noqa: F403
from academy.settings import DATABASES

ROOT_URLCONF = "bench.urls"

# Every connection a bench process opens carries this name; `bench.pgstats` selects by it.
APPLICATION_NAME = os.environ.get("BENCH_APPLICATION_NAME", "bench-app")
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = APPLICATION_NAME
# academy.settings keeps connections for 60 s (persistent); the report states which it used.
if os.environ.get("BENCH_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])
