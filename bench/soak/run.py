"""`make soak MINUTES=n`: the real stack on private servers, load, faults on a schedule, every
answer recorded, then the checker; the report goes to bench/results/soak-<time>.json and .md.

    python -m bench.soak.run --minutes 10
    python -m bench.soak.run --profile short      # CI: about 2 minutes
"""

import argparse
import io
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
# Two academies, two people each: enough to prove the walls between them.
ACADEMIES = ("north", "south")
PEOPLE_PER_ACADEMY = 2
POLL_CLIENTS_PER_PERSON = 3
WEB_PROCESSES = 2
WORKERS = 2
# After the last fault: jobs are driven to their end, then clients go on this long, so the
# checker sees views settle (CONVERGE_SECONDS) and stay settled.
SETTLE_SECONDS = 15.0
# Jobs still running when the faults end get this long to finish (a killed worker's job
# waits for its lease to run out and the reaper to queue it again).
FINISH_TIMEOUT_SECONDS = 180.0
# Once the clients are gone, the servers get this long to notice their closed streams.
STREAMS_CLOSE_SECONDS = 20.0
# The first faults wait for this much warm load; faults are then spread evenly.
WARMUP_SECONDS = 10.0
# Environment of every process of the stack: short leases and timeouts, so a killed worker's
# job is taken again within the run.
STACK_ENV = {
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": "20",
    "AI_LEASE_SECONDS": "9",
    "AI_REAP_INTERVAL_SECONDS": "3",
    "AI_RESEND_AFTER_SECONDS": "20",
    "VIDEO_LEASE_SECONDS": "20",
    "VIDEO_REAP_INTERVAL_SECONDS": "5",
    "VIDEO_RESEND_AFTER_SECONDS": "20",
    # The real uploads' transcode: two tiny renditions (the fewest a ladder takes), the
    # fastest preset, one thread.
    "VIDEO_HLS_LADDER": "160x90:150,320x180:300",
    "VIDEO_X264_PRESET": "ultrafast",
    "VIDEO_FFMPEG_THREADS": "1",
    "JOBBOX_STREAM_HEARTBEAT_SECONDS": "2",
    "JOBBOX_STREAMS_PER_PERSON": "16",
    # A process's sync Redis pool at most (it keeps what it opened): the checker holds each
    # process to it once the clients are gone.
    "JOBBOX_REDIS_MAX_CONNECTIONS": "16",
    "DJANGO_SETTINGS_MODULE": "academy.settings",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--profile", choices=("full", "short"), default="full")
    parser.add_argument("--cluster", action="store_true")
    # A property whose violations are a known, open defect (docs/how-to/soak.md, "What the
    # runs found"): still counted and reported, but not the run's failure. Every other
    # property's violation fails the run.
    parser.add_argument("--tolerate", action="append", default=[], metavar="PROPERTY")
    args = parser.parse_args(argv)
    minutes = 1.5 if args.profile == "short" else args.minutes
    report = soak(minutes=minutes, cluster=args.cluster)
    return 0 if failing_violations(report["violations"], set(args.tolerate)) == 0 else 1


def failing_violations(violations: dict[str, int], tolerated: set[str]) -> int:
    """The violations that fail a run: every property's but the tolerated ones'."""
    unknown = tolerated - set(violations)
    if unknown:
        raise SystemExit(f"soak: --tolerate names no property: {sorted(unknown)}")
    return sum(count for prop, count in violations.items() if prop not in tolerated)


def soak(*, minutes: float, cluster: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="jobbox-soak-"))
    os.chmod(root, 0o755)
    from bench.soak.stack import Stack

    stack = Stack(root, cluster=cluster)
    try:
        stack.start()
        return _load_and_check(stack, minutes=minutes, cluster=cluster)
    finally:
        stack.stop()
        _keep_logs(stack.logs)
        shutil.rmtree(root, ignore_errors=True)


def _keep_logs(logs: Path) -> None:
    """The stack's logs (web processes, workers, beat) beside the history: where a violation's
    cause is read after the run directory is gone."""
    kept = BASE_DIR / ".run" / f"soak-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.logs"
    shutil.copytree(logs, kept, ignore=shutil.ignore_patterns("metrics-*"), dirs_exist_ok=True)
    print(f"soak: logs in {kept}", file=sys.stderr)


def _load_and_check(stack: Any, *, minutes: float, cluster: bool) -> dict[str, Any]:
    from django.db import connections

    from bench.soak import checker
    from bench.soak.clients import PollClient, StreamClient
    from bench.soak.driver import Driver, seed_people
    from bench.soak.faults import CLUSTER_FAULT_KINDS, FAULT_KINDS, FaultLog, Injector
    from bench.soak.recorder import Recorder

    # The run's own writes warn on every Redis fault; the report tells what matters.
    logging.getLogger("jobbox").setLevel(logging.ERROR)
    started = time.time()
    people = seed_people(ACADEMIES, PEOPLE_PER_ACADEMY)
    recorder, stop_clients, stop_driver = Recorder(), threading.Event(), threading.Event()
    bases = stack.bases()
    clients: list[threading.Thread] = []
    for person in people:
        strangers = [p for p in people if p.academy != person.academy]
        for n in range(POLL_CLIENTS_PER_PERSON):
            clients.append(PollClient(f"poll-{person.person}-{n}", person, strangers, bases,
                                      recorder, stop_clients))
        clients.append(StreamClient(f"stream-{person.person}", person, bases, recorder,
                                    stop_clients))
    driver = Driver(people, bases, recorder, stop_driver, clip=_clip(stack.root))
    for thread in [*clients, driver]:
        thread.start()

    log = FaultLog()
    injector = Injector(stack, log)
    kinds = list(CLUSTER_FAULT_KINDS if cluster else FAULT_KINDS)
    fault_seconds = max(minutes * 60 - WARMUP_SECONDS - SETTLE_SECONDS, 10.0)
    rounds = max(1, int(fault_seconds // (len(kinds) * 12)))
    schedule = [kind for _ in range(rounds) for kind in random.sample(kinds, len(kinds))]
    gap = fault_seconds / len(schedule)
    time.sleep(WARMUP_SECONDS)
    baseline = stack.figures()  # under load, before any fault
    for kind in schedule:
        began = time.monotonic()
        print(f"soak: {kind}", flush=True)
        injector.inject(kind)
        time.sleep(max(0.0, gap - (time.monotonic() - began)))
    faults_cleared = time.time()

    stop_driver.set()
    driver.join()
    connections.close_all()  # this thread's connection did not survive the database restart
    driver.finish_all(timeout_seconds=FINISH_TIMEOUT_SECONDS)
    truth = driver.truth()
    real_work = driver.real_work()
    last_change = max([faults_cleared, *driver.deleted_at.values(),
                       *(row["changed_ts"] for row in truth.values() if row["changed_ts"])])
    converge_from = last_change + checker.CONVERGE_SECONDS
    time.sleep(max(0.0, converge_from - time.time()) + SETTLE_SECONDS)
    stop_clients.set()
    for thread in clients:
        thread.join(timeout=30)
    after = _figures_once_streams_closed(stack)

    found = checker.check(recorder.answers, truth, log.faults, converge_from=converge_from,
                          baseline=baseline, after=after)
    report = {
        "started": started, "minutes": minutes, "cluster": cluster,
        "faults_injected": log.counts(), "faults": log.faults,
        "answers_recorded": len(recorder.answers),
        "answers_by_op": _count(recorder.answers, "op"),
        "jobs": len(truth), "jobs_deleted": sum(r["deleted"] for r in truth.values()),
        "real_work": real_work,
        "violations": found.counts, "examples": dict(found.examples),
        "baseline": baseline, "after": after, "converge_from": converge_from,
        "seconds": time.time() - started,
    }
    _write(report)
    # The whole history beside the other local run files (not committed: megabytes).
    history = BASE_DIR / ".run" / f"soak-{_stamp(report)}.history.jsonl"
    history.parent.mkdir(exist_ok=True)
    recorder.dump(history)
    print(f"soak: history in {history}", file=sys.stderr)
    return report


def _figures_once_streams_closed(stack: Any) -> dict[str, Any]:
    """The stack's figures once the servers noticed the clients' closed streams (a closed
    one is found by a heartbeat that fails, a few heartbeats at most on a loaded machine), or
    as they are after STREAMS_CLOSE_SECONDS: a stream still open then is reported."""
    deadline = time.monotonic() + STREAMS_CLOSE_SECONDS
    while True:
        figures = stack.figures()
        if figures["streams_open"] == 0 or time.monotonic() > deadline:
            return figures
        time.sleep(1)


def _clip(root: Path) -> bytes:
    """The small video every real upload sends: 2 seconds of ffmpeg's test picture and tone."""
    from tests.media import make_clip

    return make_clip(root / "clip.mp4", size="320x180", seconds=2).read_bytes()


def _count(answers: list[dict[str, Any]], field: str) -> dict[str, int]:
    counted: dict[str, int] = {}
    for answer in answers:
        counted[str(answer.get(field))] = counted.get(str(answer.get(field)), 0) + 1
    return counted


def _stamp(report: dict[str, Any]) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(report["started"]))


def _write(report: dict[str, Any]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(report)
    path = RESULTS_DIR / f"soak-{stamp}"
    path.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    out = io.StringIO()
    mode = "a local 3-master Redis Cluster" if report["cluster"] else "a single Redis"
    out.write(f"# Soak of {stamp} ({report['minutes']:g} min, {mode})\n\n")
    out.write(f"- answers recorded: {report['answers_recorded']} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(report['answers_by_op'].items()))})\n")
    out.write(f"- jobs: {report['jobs']} ({report['jobs_deleted']} deleted)\n")
    for work, ends in sorted(report["real_work"].items()):
        out.write(f"- real {work.replace('_', ' ')}: "
                  f"{', '.join(f'{k} {v}' for k, v in ends.items())} (the rest deleted)\n")
    out.write(f"- run took {report['seconds']:.0f} s\n\n## Faults injected\n\n")
    for kind, count in sorted(report["faults_injected"].items()):
        out.write(f"- {kind}: {count}\n")
    out.write("\n## Violations\n\n")
    for prop, count in report["violations"].items():
        out.write(f"- {prop}: {count}\n")
    out.write(f"\n## After the run\n\nbaseline {report['baseline']}, after {report['after']}\n")
    path.with_suffix(".md").write_text(out.getvalue())
    print(out.getvalue())
    print(f"soak: report in {path}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
