"""Where a hot poll's time goes : py-spy on the gunicorn workers under load.

    python -m bench.profile [--seconds 20] [--rate 800] [--database-url postgres://.../db]

Sets up as `bench.run` does (a fresh benchmark database, a private Redis, 25 people with 20
running jobs each, the benchmark's gunicorn server), polls one way at a fixed rate from the
load client while `py-spy record --gil --subprocesses` samples the workers (only the thread
holding the GIL: where Python spends the CPU), and writes bench/results/<date>-profile.md:
per way, the share of samples by layer and the functions with the most samples of their own.

Serves docs/explanation/architecture.md, "What we measured": the app's own Python bounds the rate.
"""

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import LoadSpec, Target
from bench.run import DEFAULT_DATABASE_URL, RESULTS_DIR, create_people

# Samples per second py-spy takes (its default is 100; more gives finer shares).
SAMPLE_RATE_HZ = 250
# People and jobs as in the full benchmark's scenario 2 (25 x 20 = 500 running jobs).
PEOPLE = 25
JOBS_PER_PERSON = 20
# Functions listed per way, by samples of their own.
TOP_FUNCTIONS = 25
# A frame belongs to the first layer whose marker its file path contains (order matters).
LAYERS = (
    ("jobbox (the library)", "/jobbox/"),
    ("academy (job kinds, middleware)", "/academy/"),
    ("bench views", "/bench/"),
    ("redis-py + hiredis", "/redis/"),
    ("DRF", "/rest_framework/"),
    ("Django", "/django/"),
    ("prometheus_client", "/prometheus_client/"),
    ("gunicorn", "/gunicorn/"),
    ("json", "/json/"),
)
WAYS = {
    "before": lambda jobs, people: [Target(f"/bench/before/videos/{vid}/", people[p].token)
                                    for vid, p in jobs],
    "jobbox": lambda jobs, people: [Target(f"/api/videos/{vid}/", people[p].token)
                                    for vid, p in jobs],
    "jobbox-box": lambda jobs, people: [Target("/api/jobbox/", p.token) for p in people],
    "ceiling": lambda jobs, people: [Target(f"/bench/redis-get/{vid}/") for vid, _ in jobs],
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=800, help="requests per second, in total")
    parser.add_argument("--ways", default="jobbox,jobbox-box,ceiling")
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread",
                        help="gthread: as the benchmark (2 workers x 4 threads); sync: 2 "
                             "single-threaded workers, the stack the CPU goal was set on")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def layer_of(frame: str) -> str:
    for name, marker in LAYERS:
        if marker in frame:
            return name
    return "other (stdlib, interpreter)"


def summarize(collapsed: str) -> dict[str, Any]:
    """Samples by layer (of the innermost frame) and by function (self samples)."""
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        innermost = stack.split(";")[-1]
        total += count
        by_layer[layer_of(innermost)] += count
        by_function[innermost] += count
    return {"total": total, "by_layer": by_layer.most_common(),
            "by_function": by_function.most_common(TOP_FUNCTIONS)}


def profile_way(server: Any, targets: list[Target], seconds: float, rate: int,
                out_dir: Path, way: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.harness import run_load

    warm = LoadSpec(base_url=server.base_url, targets=targets, rate_per_target_hz=1.0,
                    duration_seconds=1.0, max_connections=min(500, max(16, len(targets))))
    run_load(warm)
    raw = out_dir / f"py-spy-{way}.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.process.pid),
         "--subprocesses", "--gil", "--function", "--full-filenames",
         "--rate", str(SAMPLE_RATE_HZ), "--format", "raw",
         "--duration", str(int(seconds) + 1), "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches to the workers
    cpu0, started = server.workers_cpu_seconds(), time.perf_counter()
    spec = LoadSpec(base_url=server.base_url, targets=targets, duration_seconds=seconds,
                    rate_per_target_hz=rate / len(targets),
                    max_connections=min(500, max(16, len(targets))))
    result = run_load(spec)
    cpu = server.workers_cpu_seconds() - cpu0
    elapsed = time.perf_counter() - started
    _, errors = spy.communicate(timeout=seconds + 60)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {errors.decode()[-1000:]}")
    load = {"requests": result["requests"], "ok": result["ok"],
            "achieved_rps": result["achieved_rps"], "latency_ms": result["latency_ms"],
            "workers_cpu_s": round(cpu, 3), "elapsed_s": round(elapsed, 1),
            "app_cpu_ms_per_poll": round(cpu * 1000 / max(1, result["requests"]), 3)}
    return load, summarize(raw.read_text())


def report(runs: dict[str, tuple[dict[str, Any], dict[str, Any]]], args: argparse.Namespace,
           argv: list[str], started_at: str) -> str:
    lines = [f"# Where a hot poll's time goes — {started_at}", "",
             f"`python -m bench.profile {' '.join(argv)}`: gunicorn with "
             f"{_stack_text(args.worker_class)}, each way polled at "
             f"{args.rate} req/s for {args.seconds:.0f} s after a warm-up, while py-spy "
             f"samples the workers {SAMPLE_RATE_HZ} times a second, only the thread holding "
             "the GIL (the Python CPU). The machine is shared with other engineers' tests: "
             f"load average {os.getloadavg()[0]:.1f} at the end.", ""]
    for way, (load, summary) in runs.items():
        total = max(1, summary["total"])
        lines += [f"## {way}", "",
                  f"{load['requests']:,} requests ({load['ok']:,} ok, "
                  f"{load['achieved_rps']:,.0f} req/s, p99 {load['latency_ms'].get('p99', 0)} "
                  f"ms); workers' CPU {load['workers_cpu_s']} s = "
                  f"**{load['app_cpu_ms_per_poll']} ms per poll**; "
                  f"{summary['total']:,} samples.", "",
                  "| layer (innermost frame) | share of samples |", "|---|---|"]
        lines += [f"| {name} | {100 * n / total:.1f} % |" for name, n in summary["by_layer"]]
        lines += ["", "| function (own samples) | share |", "|---|---|"]
        lines += [f"| `{name}` | {100 * n / total:.1f} % |"
                  for name, n in summary["by_function"]]
        lines.append("")
    return "\n".join(lines)


def _stack_text(worker_class: str) -> str:
    if worker_class == "sync":
        return "2 sync workers (one request at a time each, no keep-alive)"
    return "2 gthread workers x 4 threads, as in the benchmark"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from bench import stack
    from process_tools.redis_server import RedisServer

    started_at = dt.datetime.now(dt.UTC)
    stack.recreate_database(args.database_url)
    redis_server = RedisServer().start()
    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": redis_server.url,
                       "DJANGO_SETTINGS_MODULE": "bench.settings",
                       "BENCH_APPLICATION_NAME": "bench-drv", "LOG_LEVEL": "ERROR"})
    server = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from bench import scenarios

        call_command("migrate", verbosity=0)
        tenant_id, _, people = create_people(PEOPLE)
        jobs = [(scenarios.start_video(tenant_id, people[n % PEOPLE].user_id, f"lecture {n}"),
                 n % PEOPLE) for n in range(PEOPLE * JOBS_PER_PERSON)]
        server = stack.Server("profile", "bench.settings", {},
                              worker_class=args.worker_class).start(
            Path(os.environ.get("TMPDIR", "/tmp")))
        args.results_dir.mkdir(parents=True, exist_ok=True)
        stem = started_at.strftime("%Y%m%d-%H%MZ")
        raw_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"jobbox-profile-{stem}"
        raw_dir.mkdir(exist_ok=True)
        runs = {}
        for way in [w.strip() for w in args.ways.split(",") if w.strip()]:
            print(f"bench.profile: {way}", file=sys.stderr, flush=True)
            runs[way] = profile_way(server, WAYS[way](jobs, people), args.seconds, args.rate,
                                    raw_dir, way)
    finally:
        if server is not None:
            server.stop()
        redis_server.stop()
    path = args.results_dir / f"{stem}-profile.md"
    path.write_text(report(runs, args, argv, started_at.isoformat(timespec="seconds")))
    print(f"bench.profile: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
