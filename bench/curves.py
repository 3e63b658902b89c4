"""Curves, not points: each cost plotted against the work that makes it, with the command,
the machine and the date written on the figure (so a PNG read alone says where it came from).

    python -m bench.curves db-reads --jobs 100,500,1000,2000      # job-table reads/s vs jobs
    python -m bench.curves streams --streams 1000,2000,5000,10000,18000   # KB, p99, conns
    python -m bench.curves outage --processes 1,2,4,8,16 --jobs 100,500   # Redis stopped
    python -m bench.curves gc-pauses --streams 10000 --seconds 900        # the full collection

Each writes bench/results/curve-<name>-<time>.json and its PNG beside it. The database is
BENCH_DATABASE_URL's (dropped and created afresh); Redis is a private redis-server. Redis
memory against jobs is `python -m bench.memory --curve ... --plot` (bench.curve_plots).
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.curve_plots import plot_db_reads, plot_gc_pauses, plot_outage, plot_streams

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_db"


# --- The sweeps ----------------------------------------------------------------------------


def redis_version() -> str:
    from process_tools.redis_server import redis_server_binary

    text = subprocess.run([redis_server_binary(), "--version"], capture_output=True,
                          text=True, check=True).stdout
    return next((w[2:] for w in text.split() if w.startswith("v=")), text.strip())


def stamped(name: str, argv: list[str]) -> dict[str, Any]:
    """What every curve's JSON and figure say about where it came from."""
    from bench.memory import machine

    return {"curve": name, "command": " ".join(["python -m bench.curves", *argv]),
            "machine": machine(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "redis": redis_version(), "load_average": os.getloadavg()}


def write(result: dict[str, Any], plot: Any, results_dir: Path) -> Path:
    started = dt.datetime.fromisoformat(result["date"])
    path = results_dir / f"curve-{result['curve']}-{started:%Y%m%dT%H%MZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {path}, {plot(result, path.with_suffix('.png'))}")
    return path


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def db_reads(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from bench import sweeps

    jobs = numbers(args.jobs)
    result["points"] = []
    with sweeps.bench_stack(args.database_url, -(-max(jobs) // sweeps.JOBS_PER_PERSON)) as b:
        for count in jobs:
            for variant in args.ways.split(","):
                if variant == "before" and count > args.before_max_jobs:
                    continue
                point = sweeps.db_reads_point(b, variant, count, args.seconds)
                print(json.dumps(point), flush=True)
                result["points"].append(point)


def outage(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from bench import sweeps

    jobs, result["processes"] = numbers(args.jobs), numbers(args.processes)
    result["timing_seconds"] = {"before": args.pre, "stopped": args.outage, "after": args.post}
    result["points"] = []
    with sweeps.bench_stack(args.database_url, -(-max(jobs) // sweeps.JOBS_PER_PERSON)) as b:
        for processes in result["processes"]:
            server = sweeps.outage_server(processes)
            try:
                for count in jobs:
                    point = sweeps.outage_point(b, server, processes, count,
                                                (args.pre, args.outage, args.post))
                    print(json.dumps(point), flush=True)
                    result["points"].append(point)
            finally:
                server.stop()


def open_files_probe(wanted: int) -> dict[str, Any]:
    """This process's open-file limits, and what raising the hard one to `wanted` says."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    probe: dict[str, Any] = {"soft": soft, "hard": hard, "raise_to": wanted}
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, max(hard, wanted)))
        probe["raised"] = True
    except (ValueError, OSError) as exc:
        probe["raised"], probe["error"] = False, f"{type(exc).__name__}: {exc}"
    return probe


def streams_run(arguments: list[str]) -> dict[str, Any]:
    """One `python -m bench.streams` run as a process of its own (its Django, its database
    recreated); its result, or why it did not run."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run.json"
        # Its scratch files (tokens, receipts, logs) in a directory of its own, not shared
        # /tmp names another run on the machine may be writing.
        done = subprocess.run([sys.executable, "-m", "bench.streams", *arguments, "--out",
                               str(out), "--skip-redis-memory"], cwd=BASE_DIR,
                              env={**os.environ, "TMPDIR": scratch},
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            return {"not_run": done.stderr.strip()[-600:], "returncode": done.returncode}
        return json.loads(out.read_text())


def streams(args: argparse.Namespace, result: dict[str, Any]) -> None:
    counts = numbers(args.streams)
    result["open_files"] = open_files_probe(max(counts) + 2_000)
    result["points"] = []
    for count in counts:
        run = streams_run(["--streams", str(count), "--other-streams", str(args.other_streams),
                           "--unwatched", str(args.other_streams), "--rate", str(args.rate),
                           "--seconds", str(args.seconds)])
        point = {"streams": count, **stream_point(run)}
        print(json.dumps(point), flush=True)
        result["points"].append(point)


def stream_point(run: dict[str, Any]) -> dict[str, Any]:
    if "not_run" in run:
        return run
    process = run["process_a"]
    return {"opened": process["streams"], "refused": run["opened"]["a"]["refused"],
            "open_seconds": run["opened"]["a"]["open_seconds"],
            "kb_per_stream": process["kb_per_stream"],
            "redis_connections": process["after_streams_opened"]["redis_connections"],
            "redis_connections_during_transitions":
                process["during_transitions"]["redis_connections"],
            "threads": process["after_streams_opened"]["threads"],
            "latency_ms": run["latency_transition_to_client"]["from_call_return"],
            "matched": run["latency_transition_to_client"]["matched"],
            "load_average": run["load_average_at_start"],
            "load_average_at_end": run["load_average_at_end"]}


def gc_pauses(args: argparse.Namespace, result: dict[str, Any]) -> None:
    result["run"] = run = streams_run([
        "--streams", str(args.streams), "--other-streams", str(args.other_streams),
        "--unwatched", str(args.other_streams), "--rate", str(args.rate),
        "--seconds", str(args.seconds), "--gc-pauses",
        # Streams outlive the run: the service ends each after 10 min (the browser
        # reconnects), which would empty the process halfway through.
        "--stream-max-seconds", str(int(args.seconds) + 1_200)])
    if "not_run" in run:
        raise SystemExit(f"bench.curves: the run failed: {run['not_run']}")


SWEEPS = {"db-reads": (db_reads, plot_db_reads), "streams": (streams, plot_streams),
          "outage": (outage, plot_outage), "gc-pauses": (gc_pauses, plot_gc_pauses)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    sub = parser.add_subparsers(dest="curve", required=True)
    reads = sub.add_parser("db-reads", help="job-table reads/s against jobs polled at 1 Hz")
    reads.add_argument("--jobs", default="100,500,1000,2000")
    reads.add_argument("--ways", default="jobbox,before")
    reads.add_argument("--before-max-jobs", type=int, default=500,
                       help="'before' reads the database on every poll: larger points "
                            "measure the machine's limit, not the way")
    reads.add_argument("--seconds", type=float, default=10.0)
    down = sub.add_parser("outage", help="reads with Redis stopped against web processes")
    down.add_argument("--processes", default="1,2,4,8,16")
    down.add_argument("--jobs", default="100,500")
    down.add_argument("--pre", type=float, default=3.0)
    down.add_argument("--outage", type=float, default=10.0)
    down.add_argument("--post", type=float, default=5.0)
    for name, default_seconds in (("streams", 20.0), ("gc-pauses", 900.0)):
        one = sub.add_parser(name, help="bench.streams runs: KB, p99, Redis connections"
                             if name == "streams" else "GC pauses over a long stream run")
        one.add_argument("--streams", default="1000,2000,5000,10000,18000"
                         if name == "streams" else "10000")
        one.add_argument("--other-streams", type=int, default=200 if name == "streams"
                         else 1000, help="process B's streams, and as many unwatched")
        one.add_argument("--rate", type=int, default=100)
        one.add_argument("--seconds", type=float, default=default_seconds)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.environ["BENCH_DATABASE_URL"] = args.database_url  # bench.streams reads it
    result = stamped(args.curve, argv)
    sweep, plot = SWEEPS[args.curve]
    sweep(args, result)
    write(result, plot, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
