"""`make bench`: set up, run the six scenarios, write the dated report.

    python -m bench.run [--quick] [--database-url postgres://.../bench_db]

Order: recreate the benchmark database, start a private Redis, migrate, create one tenant
with people and tokens, start two servers (the service with the baseline views, and the
django-cachalot one), calibrate the counters, run the scenarios, stop everything, and write
bench/results/<date>-<profile>.md with its plots and raw results (JSON).

Serves docs/explanation/architecture.md, "The three parts": bench.
"""

import argparse
import datetime as dt
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_db"
WRITER_SETTINGS = "bench.settings_cachalot"
# Churn steps measured on an idle server to learn one step's database work.
CALIBRATION_STEPS = 10


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the < 2 minute profile")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--scenarios", default="1,2,3,4,5,6",
                        help="comma-separated scenario numbers to run; `rates` runs scenario "
                             "2's highest-rate search alone")
    parser.add_argument("--rate-variants", default="",
                        help="comma-separated ways the rate search polls (default: the "
                             "profile's), e.g. before,jobbox,jobbox-box,ceiling")
    parser.add_argument("--s5-poll-hz", type=float, default=None,
                        help="scenario 5's polls per job per second (default 1: the scenario-2 "
                             "load); lower on a machine that cannot drive 500 polls/s")
    parser.add_argument("--s5-outage-seconds", type=float, default=None,
                        help="how long scenario 5 keeps Redis stopped (default 30)")
    parser.add_argument("--s5-variants", default=None,
                        help="comma-separated ways scenario 5 runs (default: all four)")
    parser.add_argument("--update-readme", action="store_true",
                        help="put the headline table of this run into README.md")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "memory_gib": round(memory_kib / 1024 / 1024, 1),
            "cpu": model, "kernel": platform.release(), "load_average": os.getloadavg()}


def versions(database_url: str, redis_url: str) -> dict[str, str]:
    import psycopg
    import redis

    found = {"python": platform.python_version()}
    for package in ("django", "djangorestframework", "psycopg", "redis", "hiredis",
                    "django-cachalot", "gunicorn", "aiohttp"):
        try:
            found[package] = version(package)
        except Exception:
            found[package] = "not installed"
    with psycopg.connect(database_url) as conn:
        found["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])
    found["redis-server"] = str(redis.Redis.from_url(redis_url).info("server")["redis_version"])
    return found


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from bench import stack
    from process_tools.redis_server import RedisServer

    stack.database_name(args.database_url)  # refuses `test` before anything is touched
    started_at = dt.datetime.now(dt.UTC)
    machine_at_start = machine()
    wall0 = time.monotonic()
    stack.recreate_database(args.database_url)
    redis_server = RedisServer().start()
    cache_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    os.environ.update({
        "DATABASE_URL": args.database_url, "REDIS_URL": redis_server.url,
        # The writers (this process, simulate_jobs) run with cachalot installed, as a team
        # using it would run its workers: their writes invalidate its cache as they must.
        "BENCH_CACHE_URL": cache_url, "DJANGO_SETTINGS_MODULE": WRITER_SETTINGS,
        "BENCH_APPLICATION_NAME": "bench-drv", "LOG_LEVEL": "ERROR",
    })
    servers: dict[str, stack.Server] = {}
    monitor = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from bench import scenarios
        from bench.harness import Harness
        from bench.pgstats import STATS_IDLE_FLUSH_SECONDS, Monitor
        from bench.urls import ai_kind

        profile = scenarios.QUICK if args.quick else scenarios.FULL
        if args.rate_variants:
            profile = replace(profile, rate_variants=tuple(
                v.strip() for v in args.rate_variants.split(",") if v.strip()))
        if args.s5_poll_hz is not None:
            profile = replace(profile, s5_poll_hz=args.s5_poll_hz)
        if args.s5_variants:
            profile = replace(profile, s5_variants=tuple(args.s5_variants.split(",")))
        if args.s5_outage_seconds is not None:
            profile = replace(profile, s5_outage=args.s5_outage_seconds)
        tenant_id, slug, people = create_people(profile.people)
        stack.quiet_autovacuum(args.database_url)
        run_dir = args.results_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
        servers["main"] = stack.Server("main", "bench.settings", {}).spawn(log_dir)
        servers["cachalot"] = stack.Server("cachalot", "bench.settings_cachalot",
                                           {}).spawn(log_dir)
        # The event stream needs ASGI; polls stay on gunicorn (docs/explanation/architecture.md,
        # "What we measured").
        servers["stream"] = stack.Server("stream", "bench.settings", {}, asgi=True).spawn(log_dir)
        if "before-conn0" in profile.s2_extra_variants:
            servers["conn0"] = stack.Server("conn0", "bench.settings",
                                            {"BENCH_CONN_MAX_AGE": "0"}).spawn(log_dir)
        for server in servers.values():
            server.wait_ready()
        monitor = Monitor(stack.maintenance_dsn(args.database_url),
                          stack.database_name(args.database_url),
                          stack.APP_PREFIX, stack.SERVER_PREFIX)
        harness = Harness(monitor, job_tables())
        harness.commands += [
            " ".join([*(f"{k}={v}" for k, v in s.env.items()),
                      f"DJANGO_SETTINGS_MODULE={s.settings_module}", "python", *s.command()[1:]])
            for s in servers.values()]
        kind = ai_kind()
        b = scenarios.Bench(profile=profile, harness=harness, servers=servers,
                            redis=redis_server, cache_url=cache_url, tenant_id=tenant_id,
                            tenant_slug=slug, people=people, ai_kind=kind)
        if kind is None:
            b.availability["ai"] = ("AI jobs: not available in this build (academy.ai is not "
                                    "installed); scenario 1 polls its 3 videos only")
        harness.calibrate(scenarios.churn_step(b), CALIBRATION_STEPS, list(servers.values()))
        timings: dict[str, float] = {"setup": round(time.monotonic() - wall0, 1)}
        chosen = {n.strip() for n in args.scenarios.split(",") if n.strip()}
        wanted = {int(n) for n in chosen if n.isdigit()}

        def prepare() -> None:
            scenarios.create_running_jobs(b)
            stack.quiet_autovacuum(args.database_url)

        mark = time.monotonic()
        if 1 in wanted:
            scenarios.scenario_1(b, prepare)
        else:
            prepare()
        timings["s1"] = round(time.monotonic() - mark, 1)
        if "rates" in chosen and 2 not in wanted:
            print("bench: scenario 2, highest rate only", file=sys.stderr, flush=True)
            mark = time.monotonic()
            scenarios.rate_search(b)
            timings["rates"] = round(time.monotonic() - mark, 1)
        for number, run in ((2, scenarios.scenario_2), (3, scenarios.scenario_3),
                            (4, scenarios.scenario_4), (5, scenarios.scenario_5),
                            (6, scenarios.scenario_6)):
            if number in wanted:
                print(f"bench: scenario {number}", file=sys.stderr, flush=True)
                mark = time.monotonic()
                try:
                    run(b)
                except Exception as exc:
                    # One broken scenario (say, an app that landed since) must not cost the
                    # others: the report says which failed and how.
                    b.availability[f"s{number}-failed"] = (
                        f"scenario {number} failed: {type(exc).__name__}: {exc}")
                    print(f"bench: scenario {number} failed", file=sys.stderr, flush=True)
                    traceback.print_exc()
                    if redis_server.process is None:  # scenario 5 failed while Redis was down
                        redis_server.start()
                timings[f"s{number}"] = round(time.monotonic() - mark, 1)
        # Anything that arrives now was missed by a phase: it must be (close to) nothing.
        # (The quick profile leaves this 11 s check out.)
        late_check: dict[str, int] | None = None
        if not args.quick:
            last = monitor.counters()
            time.sleep(STATS_IDLE_FLUSH_SECONDS)
            late = monitor.counters().minus(last)
            late_check = {"job_reads": late.scans(job_tables()),
                          "all_reads": sum(t.scans for t in late.tables.values()),
                          "transactions": late.xact_commit}
        results = {
            "profile": profile.name, "started_at": started_at.isoformat(timespec="seconds"),
            "duration_seconds": round(time.monotonic() - wall0, 1), "machine": machine_at_start,
            "versions": versions(args.database_url, redis_server.url),
            "servers": {name: {"workers": stack.SERVER_WORKERS, "threads": stack.SERVER_THREADS,
                               "settings": s.settings_module, "env": s.env}
                        for name, s in servers.items()},
            "conn_max_age": conn_max_age(), "commands": [command_line(argv), *harness.commands],
            "availability": b.availability,
            "calibration": {"monitor": asdict(harness.monitor_footprint),
                            "churn_step": asdict(harness.churn_footprint)},
            "late_counters": late_check, "timings": timings,
            "load_average_at_end": os.getloadavg(),
            "profile_settings": asdict(profile),
            "records": [r.as_dict() for r in harness.records], "extra": b.extra,
        }
    finally:
        for server in servers.values():
            server.stop()
        if monitor is not None:
            monitor.close()
        redis_server.stop()
    from bench import report

    paths = report.write(results, args.results_dir)
    if args.update_readme and wanted == {1, 2, 3, 4, 5, 6}:
        # The headline summarises every scenario: a partial run (--scenarios) leaves it be.
        report.update_readme(BASE_DIR / "README.md", results, paths["markdown"])
    print(f"bench: report {paths['markdown']}", file=sys.stderr)
    return 0


def command_line(argv: list[str]) -> str:
    return " ".join(["python -m bench.run", *argv])


def conn_max_age() -> int | None:
    from django.conf import settings

    return settings.DATABASES["default"]["CONN_MAX_AGE"]


def job_tables() -> tuple[str, ...]:
    from jobbox import registry

    return tuple(sorted({job.model._meta.db_table for job in registry.all_jobs()}))


def create_people(count: int) -> tuple[int, str, list[Any]]:
    """One tenant, `count` people with a token each (everyone polls as themselves)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from academy.tenants.models import Membership, Tenant
    from bench.scenarios import Person

    tenant = Tenant.objects.create(slug="bench", name="Bench Academy")
    people = []
    for n in range(count):
        user = get_user_model().objects.create_user(username=f"bench-{n}")
        Membership.objects.create(user=user, tenant=tenant)
        people.append(Person(user.pk, Token.objects.create(user=user).key))
    return tenant.pk, tenant.slug, people


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
