"""Redis bytes per job, per event and per principal: the previous layout and the current one,
side by side in one run, on a private redis-server this module starts itself.

    python -m bench.memory                      # 10,000 jobs, every layout, a table on stdout
    python -m bench.memory --curve 1000,10000,100000 --plot
                                                # + bytes against jobs, bench/results/*.png

Each layout gets the same work on an empty Redis: people with a cached principal (and their
session generation), MEMORY_JOBS_PER_PERSON videos each, every video created (v1), started
(v2) and reporting progress once (an event), then finished (v3). `INFO memory` used_memory
deltas give the all-in bytes (keys, values, TTLs, the keyspace's own tables; the clients'
buffers left out); `MEMORY USAGE ... SAMPLES 0` gives each key kind. The current layout
is written by jobbox itself (the write path and the principal fill), twice: with nobody
streaming (no person holds a history) and with every person holding a stream open (each
person's lease and history counted); the previous one by `write_previous_layout`, which
replays the previous formats byte for byte (its values are what a rolling deploy still
finds in Redis). The server runs with its defaults: `stream-node-max-bytes` 4096, and small
hashes and sorted sets (up to 128 entries of up to 64 bytes) in one compact allocation.
Results: bench/results/memory-<UTC time>.json."""

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
# A box of 10 jobs per person, as the stream benchmark's people have.
MEMORY_JOBS_PER_PERSON = 10
# Commands per pipeline for the previous layout's writes: a few hundred KB per round trip.
PIPELINE_COMMANDS = 2_000
TENANT = "1"
# 2026-12-07T12:00:00Z, in ms: the snapshots' `updated_at`, within every TTL of a run.
CHANGED_AT_MS = 1_796_644_800_000


def start_redis() -> Any:
    from academy.embedded import RedisServer

    return RedisServer().start()


def setup_django(redis_url: str) -> None:
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    import django
    from django.conf import settings
    from django.test.signals import setting_changed

    django.setup()
    # Bytes are measured, not speed: a write slowed by a busy machine must not time out.
    settings.JOBBOX = {**settings.JOBBOX, "SOCKET_TIMEOUT_SECONDS": 10.0,
                       "CONNECT_TIMEOUT_SECONDS": 10.0}
    setting_changed.send(sender=type(settings), setting="JOBBOX", value=settings.JOBBOX,
                         enter=True)


def video_snapshot(video_id: int, owner: int, version: int, status: str) -> Any:
    """The snapshot jobbox stores for a video row at `version` (built by its TrackedJob, as a
    transition builds it)."""
    from academy.videos.models import Video
    from jobbox import registry

    changed = dt.datetime.fromtimestamp(CHANGED_AT_MS / 1000, dt.UTC)
    video = Video(pk=video_id, tenant_id=int(TENANT), uploaded_by_id=owner, title="Lecture",
                  status=status, version=version, updated_at=changed,
                  hls_path="hls/x/master.m3u8" if status == "READY" else "",
                  duration=60 if status == "READY" else None)
    return registry.get("video").snapshot_of(video)


def principal_of(user_id: int) -> Any:
    from jobbox.auth.principals import Principal

    # A session auth hash is 64 hex characters (HMAC-SHA256), as Django makes it.
    return Principal(user_id=user_id, username=f"learner{user_id}", is_active=True,
                     is_staff=False, is_superuser=False, tenant=TENANT,
                     session_hash="5f" * 32)


# --- the current layout, written by jobbox ----------------------------------------------------


def current_principals(people: list[int]) -> None:
    from jobbox import keys
    from jobbox.auth.principals import fill_principal

    for user_id in people:
        principal = principal_of(user_id)
        fill_principal(keys.user_principal_key(user_id), lambda p=principal: p, seen=None,
                       generation_key=keys.session_generation_key(user_id))


def current_running(jobs: list[tuple[int, int]]) -> None:
    from jobbox.write import report_progress, store_snapshot

    for video_id, owner in jobs:
        store_snapshot(video_snapshot(video_id, owner, 1, "UPLOADED"))
        store_snapshot(video_snapshot(video_id, owner, 2, "PROCESSING"))
        report_progress("video", str(video_id), percent=40, step_index=2, step_total=4,
                        step_name="transcode 360p", step_percent=60)


def current_finished(jobs: list[tuple[int, int]]) -> None:
    from jobbox.write import store_snapshot

    for video_id, owner in jobs:
        store_snapshot(video_snapshot(video_id, owner, 3, "READY"))


# --- the previous layout, replayed byte for byte ----------------------------------------------


def previous_snapshot_json(snapshot: Any) -> str:
    """A snapshot as the previous layout stored it: an object of named fields, format 1."""
    return json.dumps({"f": 1, "kind": snapshot.kind, "id": snapshot.job_id,
                       "tenant": snapshot.tenant, "owner": snapshot.owner,
                       "version": snapshot.version, "status": snapshot.status,
                       "terminal": snapshot.terminal, "fields": snapshot.fields},
                      separators=(",", ":"), ensure_ascii=False)


def previous_progress() -> dict[str, str | int]:
    """A progress hash after one report, as the previous layout's report_progress.lua left
    it (the same short fields this layout writes: progress did not change)."""
    now_ms = int(time.time() * 1000)
    return {"p": 40, "u": now_ms, "si": 2, "sn": 4, "nm": "transcode 360p", "sp": 60,
            "tm": now_ms, "tp": 40, "pm": now_ms, "ps": 2}


def write_previous_layout(client: Any, people: list[int], jobs: list[tuple[int, int]],
                          stage: str) -> None:
    """The previous formats, with the same keys, TTLs and caps as jobbox: snapshots as
    objects, box members that carry the job's two key names, and every person's events
    recorded in a history whether or not anyone streams. Principals did not change: jobbox
    writes them."""
    from jobbox import conf, keys, registry
    from jobbox.events import ALL_FIELDS, encode_event
    from jobbox.write import box_score_ms, previous_box_member

    if stage == "principals":
        current_principals(people)
        return
    settings, job = conf.settings(), registry.get("video")
    pipe = client.pipeline(transaction=False)
    steps = ([(1, "UPLOADED", "changed"), (2, "PROCESSING", "changed"),
              (2, "PROCESSING", "progressed")] if stage == "running"
             else [(3, "READY", "changed")])
    for video_id, owner in jobs:
        for version, status, name in steps:
            snapshot = video_snapshot(video_id, owner, version, status)
            history = keys.owner_events_key(TENANT, str(owner))
            if name == "changed":
                pipe.set(keys.status_key("video", str(video_id)),
                         previous_snapshot_json(snapshot), ex=snapshot.ttl_seconds)
                index = keys.box_index_key(TENANT, str(owner))
                pipe.zadd(index, {previous_box_member(job, str(video_id)):
                                  box_score_ms(job, snapshot)})
                pipe.expire(index, settings.RUNNING_TTL_SECONDS)
            else:
                progress_key = keys.progress_key("job:video", str(video_id))
                pipe.hset(progress_key, mapping=previous_progress())
                pipe.expire(progress_key, settings.RUNNING_TTL_SECONDS)
            pipe.xadd(history, dict(pairs(encode_event(name, snapshot, [ALL_FIELDS]))),
                      maxlen=settings.EVENT_HISTORY_MAXLEN, approximate=False)
            pipe.expire(history, settings.EVENT_HISTORY_TTL_SECONDS)
        if len(pipe) >= PIPELINE_COMMANDS:
            pipe.execute()
    pipe.execute()


def pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def open_streams(client: Any, people: list[int]) -> None:
    """Every person has a stream open (its lease, as jobbox.stream's open records it): their
    events are kept in a history."""
    from jobbox import keys

    lease_ms = 60 * 60 * 1000
    pipe = client.pipeline(transaction=False)
    for user_id in people:
        key = keys.owner_streams_key(TENANT, str(user_id))
        pipe.zadd(key, {f"bench-stream-{user_id}": int(time.time() * 1000) + lease_ms})
        pipe.pexpire(key, lease_ms)
    pipe.execute()


# --- measuring --------------------------------------------------------------------------------


def used_memory(client: Any) -> int:
    """used_memory without the clients' buffers: a pipeline's query buffer grows and shrinks
    with the run (Redis resizes it when idle), and is no job's bytes."""
    found = client.info("memory")
    return int(found["used_memory"]) - int(found.get("mem_clients_normal", 0))


def key_usage(client: Any, owner: int, video_id: int) -> dict[str, int]:
    """MEMORY USAGE of one key of each kind (SAMPLES 0: every element counted)."""
    from jobbox import keys

    def usage(key: str) -> int:
        return int(client.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0)

    history = keys.owner_events_key(TENANT, str(owner))
    events = int(client.xlen(history))
    return {
        "status (finished video)": usage(keys.status_key("video", str(video_id))),
        "progress": usage(keys.progress_key("job:video", str(video_id))),
        "box index (10 jobs)": usage(keys.box_index_key(TENANT, str(owner))),
        "event history (one person)": usage(history),
        "events in it": events,
        "principal": usage(keys.user_principal_key(owner)),
        "session generation": usage(keys.session_generation_key(owner)),
    }


def measure(client: Any, jobs_count: int, write: Callable[[str, list[int],
                                                            list[tuple[int, int]]], None],
            ) -> dict[str, Any]:
    """Bytes of one layout for `jobs_count` jobs, from an empty Redis."""
    client.flushdb()
    people = list(range(1, max(1, jobs_count // MEMORY_JOBS_PER_PERSON) + 1))
    jobs = [(video_id, people[(video_id - 1) // MEMORY_JOBS_PER_PERSON])
            for video_id in range(1, len(people) * MEMORY_JOBS_PER_PERSON + 1)]
    base = used_memory(client)
    write("principals", people, jobs)
    with_principals = used_memory(client)
    write("running", people, jobs)
    running = used_memory(client)
    usage_running = key_usage(client, people[0], jobs[0][0])
    write("finished", people, jobs)
    finished = used_memory(client)
    usage = key_usage(client, people[0], jobs[0][0])
    principal_bytes = (with_principals - base) / len(people)
    history_per_event = usage["event history (one person)"] / max(1, usage["events in it"])
    return {
        "jobs": len(jobs), "people": len(people),
        "bytes_per_principal": round(principal_bytes),
        # All-in: a job's own keys, its box entry, its events, its share of a principal.
        "bytes_per_running_job": round((running - base) / len(jobs)),
        "bytes_per_finished_job": round((finished - base) / len(jobs)),
        "bytes_per_event": round(history_per_event),
        "memory_usage_running": usage_running,
        "memory_usage_finished": usage,
    }


def layout_writers(client: Any) -> dict[str, Callable[[str, list[int], list[tuple[int, int]]],
                                                       None]]:
    def previous(stage: str, people: list[int], found: list[tuple[int, int]]) -> None:
        write_previous_layout(client, people, found, stage)

    def current(stage: str, people: list[int], found: list[tuple[int, int]]) -> None:
        {"principals": lambda: current_principals(people),
         "running": lambda: current_running(found),
         "finished": lambda: current_finished(found)}[stage]()

    def current_streaming(stage: str, people: list[int], found: list[tuple[int, int]]) -> None:
        if stage == "principals":
            open_streams(client, people)  # counted with the principal: a person's own bytes
        current(stage, people, found)

    return {"previous": previous, "current": current, "current, streaming": current_streaming}


def run_layouts(client: Any, jobs: int) -> dict[str, Any]:
    writers = layout_writers(client)
    # Once before measuring: the scripts jobbox loads (and Redis's tables growing to their
    # first sizes) are not any job's bytes.
    measure(client, 10 * MEMORY_JOBS_PER_PERSON, writers["current"])
    return {name: measure(client, jobs, write) for name, write in writers.items()}


def print_table(layouts: dict[str, Any]) -> None:
    rows = ["bytes_per_running_job", "bytes_per_finished_job", "bytes_per_event",
            "bytes_per_principal"]
    print(f"{'':28}" + "".join(f"{name:>20}" for name in layouts))
    for row in rows:
        print(f"{row:28}" + "".join(f"{found[row]:>20}" for found in layouts.values()))
    for name in layouts["current"]["memory_usage_finished"]:
        print(f"  {name:26}" + "".join(f"{found['memory_usage_finished'][name]:>20}"
                                       for found in layouts.values()))


def machine() -> str:
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # 1,000 people: fewer make the keyspace's own table growth a visible share of each.
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--curve", default="", help="job counts for the curve, e.g. 1000,10000")
    parser.add_argument("--plot", action="store_true", help="write the curve's PNG")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    server = start_redis()
    try:
        setup_django(server.url)
        import redis

        client = redis.Redis.from_url(server.url)
        started = dt.datetime.now(dt.UTC)
        result: dict[str, Any] = {
            "command": "python -m bench.memory " + " ".join(argv), "machine": machine(),
            "date": started.isoformat(timespec="seconds"),
            "redis": client.info("server")["redis_version"],
            "layouts": run_layouts(client, args.jobs)}
        print_table(result["layouts"])
        if args.curve:
            result["curve"] = curve(client, [int(n) for n in args.curve.split(",")])
        path = RESULTS_DIR / f"memory-{started:%Y%m%dT%H%MZ}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {path.relative_to(BASE_DIR)}")
        if args.plot and args.curve:
            from bench.curve_plots import plot_memory

            print(f"plot: {plot_memory(result, path.with_suffix('.png'))}")
    finally:
        server.stop()
    return 0


def curve(client: Any, counts: list[int]) -> list[dict[str, Any]]:
    """Both layouts' all-in bytes at each job count (the curve's points)."""
    points = []
    for count in counts:
        point: dict[str, Any] = {"jobs": count}
        for name, write in layout_writers(client).items():
            began = time.monotonic()
            point[name] = {**measure(client, count, write),
                           "seconds": round(time.monotonic() - began, 1)}
            print(f"curve: {count} jobs, {name}: {point[name]['bytes_per_running_job']} B "
                  f"running, {point[name]['bytes_per_finished_job']} B finished", flush=True)
        points.append(point)
    return points


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
