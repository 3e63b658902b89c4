"""The sweeps behind `python -m bench.curves db-reads|outage`: the benchmark's own stack
(bench.run's database, private Redis, gunicorn servers, PostgreSQL counters, load client),
one measured phase per point of the curve.

Serves docs/how-to/benchmarks.md, "Costs as curves".
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import stack

# Jobs per person: each person polls their own jobs with their own token.
JOBS_PER_PERSON = 20
# The servers' /metrics bearer token (this run's own servers, on loopback).
METRICS_TOKEN = "bench-curves"
# Calibration churn steps (bench.run's): one step's database work is learnt, then removed.
CALIBRATION_STEPS = 5


@contextlib.contextmanager
def bench_stack(database_url: str, people: int) -> Iterator[Any]:
    """A fresh benchmark database and private Redis, `people` people, the "main" server and
    a calibrated harness, as a scenarios.Bench; everything stopped on the way out."""
    from process_tools.redis_server import RedisServer

    stack.recreate_database(database_url)
    redis_server = RedisServer().start()
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
                       "DJANGO_SETTINGS_MODULE": "bench.settings", "LOG_LEVEL": "ERROR",
                       "BENCH_APPLICATION_NAME": "bench-drv", "METRICS_TOKEN": METRICS_TOKEN})
    server = monitor = None
    try:
        bench, monitor, server = _setup(database_url, people, redis_server)
        yield bench
    finally:
        if server is not None:
            server.stop()
        if monitor is not None:
            monitor.close()
        redis_server.stop()


def _setup(database_url: str, people: int, redis_server: Any) -> tuple[Any, Any, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench import run, scenarios
    from bench.harness import Harness
    from bench.pgstats import Monitor

    tenant_id, slug, persons = run.create_people(people)
    stack.quiet_autovacuum(database_url)
    server = stack.Server("main", "bench.settings", {}).start(_log_dir())
    monitor = Monitor(stack.maintenance_dsn(database_url), stack.database_name(database_url),
                      stack.APP_PREFIX, stack.SERVER_PREFIX)
    bench = scenarios.Bench(
        profile=replace(scenarios.QUICK, people=people, jobs_per_person=JOBS_PER_PERSON),
        harness=Harness(monitor, run.job_tables()), servers={"main": server},
        redis=redis_server, cache_url="", tenant_id=tenant_id, tenant_slug=slug,
        people=persons, ai_kind=None)
    bench.harness.calibrate(scenarios.churn_step(bench), CALIBRATION_STEPS, [server])
    return bench, monitor, server


def _log_dir() -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp"))


def grow_jobs(b: Any, count: int) -> None:
    """Running jobs until `count` are polled (each person's own, JOBS_PER_PERSON each)."""
    from bench.harness import close_own_connections
    from bench.scenarios import start_video

    while len(b.jobs) < count:
        person = len(b.jobs) // JOBS_PER_PERSON % len(b.people)
        b.jobs.append((start_video(b.tenant_id, b.people[person].user_id,
                                   f"lecture {len(b.jobs)}"), person))
    b.harness.monitor.wait_gone(close_own_connections())


def db_reads_point(b: Any, variant: str, jobs: int, seconds: float) -> dict[str, Any]:
    """`jobs` running jobs polled once a second by `variant` for `seconds`, counted by
    PostgreSQL (pg_stat_user_tables scans of the job tables, and of every table)."""
    from bench import scenarios
    from bench.load import Target

    grow_jobs(b, jobs)
    polled = b.jobs[:jobs]
    targets = [Target(b.path(variant, "video", vid), b.people[p].token)
               for vid, p in polled]
    # One poll per person fills their principal (as their first page load would); one per
    # job would be the overload of the point itself, before it is measured.
    scenarios.warm_up(b, variant, list({t.token: t for t in targets}.values()))
    opens = breaker_opens(b.server(variant))
    record = b.harness.measure("curve", variant, f"{jobs} running jobs, 1 poll/s each",
                               b.server(variant), b.poll_spec(variant, targets,
                                                              seconds=seconds))
    window = record.window_seconds
    return {"variant": variant, "jobs": jobs, "seconds": window, "polls": record.polls,
            "ok": record.ok, "errors": record.errors, "achieved_rps": record.achieved_rps,
            "latency_ms": record.latency_ms,
            "job_reads_per_second": round(record.job_reads / window, 2),
            "all_reads_per_second": round((record.job_reads + record.auth_reads
                                           + record.other_reads) / window, 2),
            "transactions_per_second": round(record.transactions / window, 2),
            # A Redis call past SOCKET_TIMEOUT_SECONDS (a stalled machine) opens the
            # breaker: the database answers, bounded by the outage copies, for a while.
            "redis_breaker_opens": opened_since(opens, breaker_opens(b.server(variant))),
            "notes": record.notes, "load_average": os.getloadavg()}


def breaker_opens(server: Any) -> float | None:
    """Times the server's Redis circuit breaker opened so far (all its workers); None when
    its /metrics did not answer (a server still busy past bench.streams' wait)."""
    from bench.streams import metric

    try:
        return metric(server.base_url, METRICS_TOKEN, "jobbox_redis_breaker_opens_total")
    except OSError:
        return None


def opened_since(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def outage_point(b: Any, server: Any, processes: int, jobs: int,
                 timing: tuple[float, float, float]) -> dict[str, Any]:
    """Redis stopped under `jobs` jobs polled once a second on `server` (`processes`
    gunicorn processes): scenario 5's run, shorter, jobbox alone."""
    from bench import scenarios

    grow_jobs(b, jobs)
    every_job = b.jobs
    pre, outage, post = timing
    b.jobs = every_job[:jobs]
    b.profile = replace(b.profile, s5_pre=pre, s5_outage=outage, s5_post=post,
                        s5_workers=processes, s5_finish_jobs=0, s5_poll_hz=1.0)
    try:
        found = scenarios._outage_run(b, f"jobbox-{processes}p-{jobs}j", "jobbox", False,
                                      server)
    finally:
        b.jobs = every_job
    record = b.harness.records[-1]
    reads = found["outage_reads_per_second"]
    return {"processes": processes, "jobs": jobs, "outage_seconds": outage,
            "outage_job_reads_per_second": round(reads, 2),
            "outage_job_reads_per_second_per_process": round(reads / processes, 2),
            "outage_statements_per_second": round(found["outage_statements_per_second"], 1),
            "recovery_seconds": found["recovery_seconds"], "polls": record.polls,
            "failed_polls": record.polls - record.ok, "latency_ms": record.latency_ms,
            "reads_per_second": found["reads_per_second"], "load_average": os.getloadavg()}


def outage_server(processes: int) -> Any:
    server = stack.Server(f"s5-{processes}p", "bench.settings", {}, workers=processes)
    return server.start(_log_dir())
