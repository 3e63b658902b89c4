"""The event stream at scale and Redis memory per job (docs/how-to/benchmarks.md).

    BENCH_DATABASE_URL=postgres://.../bench_x .venv/bin/python -m bench.streams \
        --streams 10000 --other-streams 1000 --unwatched 1000 --rate 100 --seconds 30

One uvicorn process ("A") holds `--streams` open streams, one per person; a second ("B")
holds `--other-streams` for other people; `--unwatched` people have no stream. The client
that holds the streams is a separate process (`client` below, asyncio, raw sockets). Then this
process commits `--rate` transitions a second, spread over all the people, and measures:

- memory per open stream: A's RSS after the streams opened minus before, over the streams;
- OS threads of A before and after (an open stream holds none);
- Redis connections of A (`ss`: sockets from A's pid to Redis), whatever the streams;
- p50/p99/max from the start of a transition's call (its database write included) to the
  client reading the event, on the same clock (one machine);
- history entries each process read, against the transitions of the people it watches:
  a process receives the events of the people it serves, not everyone's.

Then `redis_memory()`: INFO used_memory deltas for 1,000 running and 1,000 finished jobs
(status, progress, box entries, events, principals), and MEMORY USAGE of each key kind.
Results: bench/results/streams-<UTC time>.json and a summary on stdout.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
# Streams the client starts at once: bounds the burst of stream starts the server sees.
OPEN_CONCURRENCY = 200
# How long the client waits for every stream's first event: 10,000 starts took ~20 s on 2
# shared cores; this leaves room for 50,000 on a busy machine.
OPEN_TIMEOUT_SECONDS = 1_200
# After the last transition, events still in flight get this long to arrive.
DRAIN_SECONDS = 3.0
# Open files for the server and the client: one socket per stream, plus room for the
# database, Redis, logs and the listening socket.
OPEN_FILES_BESIDES_STREAMS = 2_000
# Connections per loopback source address: the ephemeral ports (32768-60999 by default, ~28k)
# are per source address, so 50,000 streams from 127.0.0.1 alone would run out.
STREAMS_PER_SOURCE_ADDRESS = 20_000
# Threads committing transitions: one commit takes a few ms of database round trips, so
# 100 a second need several in flight.
DRIVER_THREADS = 8
# How long /metrics may take to answer (18,000 streams at load average 16: over 10 s).
METRICS_WAIT_SECONDS = 60.0
# Commands per pipeline when warming: a few hundred KB per round trip.
WARM_BATCH = 3_000
# Jobs per person in the Redis memory measurement (a box of 10 jobs).
MEMORY_JOBS_PER_PERSON = 10


def raise_open_files(streams: int) -> int:
    """This process's (and its children's) open-file limit raised to what `streams` sockets
    need: the hard limit too when allowed (root), else up to it. Returns the limit set."""
    wanted = streams + OPEN_FILES_BESIDES_STREAMS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard  # not allowed: as far as the hard limit goes
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    return max(soft, wanted)


def source_address(n: int) -> str:
    """The loopback address the n-th stream connects from (127.0.0.1, .2, ...)."""
    return f"127.0.0.{1 + n // STREAMS_PER_SOURCE_ADDRESS}"


# --- The client process -------------------------------------------------------------------


async def _one_stream(host: str, port: int, token: str, source: str, ready: asyncio.Event,
                      opened: list[int], receipts: list[list[Any]], gate: asyncio.Semaphore,
                      ) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        writer.write((f"GET /api/jobbox/stream HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Token {token}\r\nAccept: text/event-stream\r\n\r\n"
                      ).encode())
        status = await reader.readline()
        if b" 200 " not in status:
            opened[1] += 1
            writer.close()
            return
        name = b""
        while True:  # up to the first event (the box)
            line = await reader.readline()
            if not line:  # ended before its first event
                opened[1] += 1
                return
            if line.startswith(b"event: "):
                name = line[7:].strip()
            if line == b"\n" and name:
                break
        opened[0] += 1
    await ready.wait()
    name = b""
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"event: "):
            name = line[7:].strip()
        elif line.startswith(b"data: ") and name == b"changed":
            data = json.loads(line[6:])
            receipts.append([data["id"], data["job"]["status"], time.time()])


async def client_main(base: str, tokens: list[str], out: Path) -> None:
    host, port = base.removeprefix("http://").split(":")
    ready = asyncio.Event()
    opened, receipts = [0, 0], []
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    tasks = [asyncio.ensure_future(_one_stream(host, int(port), token, source_address(n),
                                               ready, opened, receipts, gate))
             for n, token in enumerate(tokens)]
    started = time.monotonic()
    while opened[0] + opened[1] < len(tokens):
        if time.monotonic() - started > OPEN_TIMEOUT_SECONDS:
            break
        await asyncio.sleep(0.2)
    print(json.dumps({"opened": opened[0], "refused": opened[1],
                      "open_seconds": round(time.monotonic() - started, 1)}), flush=True)
    ready.set()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    out.write_text(json.dumps(receipts))
    for task in tasks:
        task.cancel()


def run_client(argv: list[str]) -> None:
    base, tokens_file, out = argv
    asyncio.run(client_main(base, json.loads(Path(tokens_file).read_text()), Path(out)))


# --- Measuring a server process ----------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def redis_connections(pid: int, redis_port: int) -> int:
    """TCP connections from `pid` to the Redis port (ss shows the owning process)."""
    text = subprocess.run(["ss", "-Htnp", "state", "established", "dport", f":{redis_port}"],
                          capture_output=True, text=True).stdout
    return sum(1 for line in text.splitlines() if f"pid={pid}," in line)


def metric(base: str, token: str, name: str) -> float:
    request = urllib.request.Request(f"{base}/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    # A process holding tens of thousands of streams on a loaded machine answers slowly.
    with urllib.request.urlopen(request, timeout=METRICS_WAIT_SECONDS) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def one_process_server(name: str, gc_pauses: Path | None = None) -> Any:
    """uvicorn with one process (no supervisor): the streams all land in it. With
    `gc_pauses`, every garbage collection of that process is timed into it (bench.gcpauses)."""
    from bench import stack

    timed = [] if gc_pauses is None else ["-m", "bench.gcpauses", str(gc_pauses), "--"]

    class OneProcess(stack.Server):
        def command(self) -> list[str]:
            return [sys.executable, *timed, "-m", "uvicorn", "academy.asgi:application",
                    "--host", "127.0.0.1", "--port", str(self.port), "--log-level",
                    "warning", "--backlog", str(OPEN_FILES_BESIDES_STREAMS)]

    return OneProcess(name, "bench.settings", {}, asgi=True)


def worker_pid(server: Any) -> int:
    from bench.stack import children_of

    children = children_of(server.process.pid)
    return children[0] if children else server.process.pid


# --- The run -----------------------------------------------------------------------------


def create_people(count: int) -> list[tuple[int, str]]:
    """`count` people in one tenant, each with a token (bulk: 10,000 in seconds)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from rest_framework.authtoken.models import Token

    from academy.tenants.models import Membership, Tenant

    tenant = Tenant.objects.create(slug="streams", name="Streams Academy")
    password = make_password(None)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"stream-{n}", password=password) for n in range(count)])
    Membership.objects.bulk_create([Membership(user=u, tenant=tenant) for u in users])
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in users])
    return [(tenant.pk, token.key) for token in tokens], [u.pk for u in users]


def warm_people(tenant_id: int, tokens: list[tuple[int, str]], owners: list[int]) -> None:
    """Each person's cached principal and (empty) box index in Redis, as their first page
    load and its rebuild leave them, written in bulk: the streams then start without the
    database (10,000 cold starts would measure the database, two sync threads at a time)."""
    from django.contrib.auth import get_user_model

    from jobbox import conf, keys
    from jobbox.auth.principals import _principal_from_user, encode_principal
    from jobbox.box import COMPLETE_MARKER
    from jobbox.client import get_redis
    from jobbox.write import box_index_ttl_seconds

    users = get_user_model().objects.in_bulk(owners)
    pipe = get_redis().pipeline(transaction=False)
    for (_, token), owner in zip(tokens, owners, strict=True):
        principal = _principal_from_user(users[owner])
        pipe.set(keys.token_principal_key(token), encode_principal(principal),
                 ex=conf.settings().PRINCIPAL_TTL_SECONDS)
        index = keys.box_index_key(str(tenant_id), str(owner))
        pipe.zadd(index, {COMPLETE_MARKER: float("inf")})
        pipe.expire(index, box_index_ttl_seconds())
        if len(pipe) >= WARM_BATCH:
            pipe.execute()
    pipe.execute()


def drive(owners: list[int], tenant_id: int, rate: int,
          seconds: float) -> dict[tuple, tuple[int, float, float]]:
    """`rate` transitions a second for `seconds`, over `owners` (DRIVER_THREADS threads, each
    with its share of the people and of the rate): each person's job goes UPLOADED (created)
    -> PROCESSING -> READY, then a new one. Returns, by (job id, status), the owner and the
    start and the return of the transition's call (its commit and Redis store happen in
    between)."""
    import threading

    from django.db import connection

    done: dict[tuple, tuple[int, float, float]] = {}
    lock = threading.Lock()

    def run(share: list[int]) -> None:
        try:
            _drive_share(share, tenant_id, rate / DRIVER_THREADS, seconds, done, lock)
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(owners[n::DRIVER_THREADS],))
               for n in range(DRIVER_THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done


def _drive_share(owners: list[int], tenant_id: int, rate: float, seconds: float,
                 done: dict[tuple, tuple[int, float, float]], lock: Any) -> None:
    from academy.videos import services

    current: dict[int, tuple[int, str]] = {}
    interval = 1.0 / rate
    next_at = time.monotonic()
    deadline = next_at + seconds
    turn = 0
    while time.monotonic() < deadline:
        owner = owners[turn % len(owners)]
        turn += 1
        at = time.time()
        job = current.get(owner)
        if job is None or job[1] == "READY":
            video_id = services.create_video(tenant_id=tenant_id, uploaded_by_id=owner,
                                             title="bench").pk
            current[owner] = (video_id, "UPLOADED")
        elif job[1] == "UPLOADED":
            services.mark_processing(job[0], worker_id="bench")
            current[owner] = (job[0], "PROCESSING")
        else:
            services.complete_video(job[0], "hls/x/master.m3u8", duration=1)
            current[owner] = (job[0], "READY")
        with lock:
            done[(str(current[owner][0]), current[owner][1])] = (owner, at, time.time())
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def matched_receipts(started: dict[tuple, tuple[int, float, float]],
                     receipts: list[list[Any]]) -> list[tuple[float, float, float]]:
    """(read by the client, call started, call returned) of each transition a client read."""
    seen: dict[tuple, float] = {}
    for job_id, status, at in receipts:
        seen.setdefault((str(job_id), status), at)
    return [(seen[k], begun, returned) for k, (_, begun, returned) in started.items()
            if k in seen]


def latency_summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(values[max(0, int(len(values) * 0.99) - 1)], 1),
            "p99_9_ms": round(values[max(0, int(len(values) * 0.999) - 1)], 1),
            "max_ms": round(values[-1], 1)}


def latencies(started: dict[tuple, tuple[int, float, float]],
              receipts: list[list[Any]]) -> dict[str, Any]:
    matched = matched_receipts(started, receipts)
    if not matched:
        return {"matched": 0}
    return {"transitions_of_watched_people": len(started), "matched": len(matched),
            "from_call_return": latency_summary([(r - e) * 1000 for r, _, e in matched]),
            "from_call_start": latency_summary([(r - b) * 1000 for r, b, _ in matched])}


def latency_timeline(started: dict[tuple, tuple[int, float, float]], receipts: list[list[Any]],
                     since: float, bucket_seconds: float = 10.0) -> list[dict[str, float]]:
    """Per `bucket_seconds` from `since` (by the call's return): transitions read, and their
    p99 and max from the call's return to the client (where a long pause lands in time)."""
    buckets: dict[int, list[float]] = {}
    for read, _, returned in matched_receipts(started, receipts):
        buckets.setdefault(int((returned - since) // bucket_seconds), []).append(
            (read - returned) * 1000)
    return [{"t": n * bucket_seconds, "transitions": len(values),
             **latency_summary(values)} for n, values in sorted(buckets.items())]


def redis_memory(redis_url: str, tenant_id: int, owners: list[int]) -> dict[str, Any]:
    """Bytes per 1,000 running and per 1,000 finished jobs, from INFO used_memory deltas on an
    otherwise idle Redis, and MEMORY USAGE per key kind."""
    import redis

    from academy.videos import services
    from jobbox import keys
    from jobbox.auth.principals import principal_for_user_id

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    people = owners[: max(1, 1000 // MEMORY_JOBS_PER_PERSON)]
    base = client.info("memory")["used_memory"]
    for owner in people:
        principal_for_user_id(owner)  # a cached principal per person
    with_principals = client.info("memory")["used_memory"]
    videos = []
    for owner in people:
        for _ in range(MEMORY_JOBS_PER_PERSON):
            video = services.create_video(tenant_id=tenant_id, uploaded_by_id=owner,
                                          title="Lecture")
            services.mark_processing(video.pk, worker_id="bench")
            services.report_video_progress(video.pk, percent=40, step_index=2, step_total=4,
                                           step_name="transcode 360p", step_percent=60)
            videos.append(video.pk)
    running = client.info("memory")["used_memory"]
    for video_id in videos:
        services.complete_video(video_id, "hls/x/master.m3u8", duration=60)
    finished = client.info("memory")["used_memory"]
    owner = str(people[0])
    sample = str(videos[0])
    usage = {
        "status (finished video)": client.memory_usage(keys.status_key("video", sample)),
        "box index (10 jobs)": client.memory_usage(keys.box_index_key(str(tenant_id), owner)),
        "event history (person)": client.memory_usage(
            keys.owner_events_key(str(tenant_id), owner)),
        "events per person": client.xlen(keys.owner_events_key(str(tenant_id), owner)),
        "principal": client.memory_usage(keys.user_principal_key(people[0])),
    }
    jobs = len(videos)
    return {
        "jobs": jobs, "people": len(people),
        "principals_bytes_per_1000_people": round((with_principals - base) * 1000
                                                  / len(people)),
        "running_bytes_per_1000_jobs": round((running - with_principals) * 1000 / jobs),
        "finished_bytes_per_1000_jobs": round((finished - with_principals) * 1000 / jobs),
        "memory_usage": usage,
        "note": "running: status + progress + box entries + 3 events per job (created, "
                "processing, progressed); finished: + 1 event each, progress kept until "
                "its TTL",
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--other-streams", type=int, default=1_000)
    parser.add_argument("--unwatched", type=int, default=1_000)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None,
                        help="the result's JSON (default bench/results/streams-<time>.json)")
    parser.add_argument("--skip-redis-memory", action="store_true",
                        help="leave out the Redis memory measurement after the streams")
    parser.add_argument("--gc-pauses", action="store_true",
                        help="time every garbage collection of process A (bench.gcpauses)")
    parser.add_argument("--stream-max-seconds", type=int, default=None,
                        help="the servers' JOBBOX_STREAM_MAX_SECONDS (default: the "
                             "service's, 600): longer keeps the streams of a long run open")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "client":
        run_client(argv[1:])
        return 0
    args = parse_args(argv)
    result_limit = raise_open_files(max(args.streams, args.other_streams))
    if result_limit < args.streams + OPEN_FILES_BESIDES_STREAMS:
        print(f"bench.streams: open files are capped at {result_limit} per process here (a "
              f"hard limit this process may not raise): at most "
              f"{result_limit - OPEN_FILES_BESIDES_STREAMS} streams", file=sys.stderr)
        return 2
    database_url = os.environ["BENCH_DATABASE_URL"]
    from bench import stack
    from process_tools.redis_server import RedisServer

    stack.recreate_database(database_url)
    redis_server = RedisServer().start()
    metrics_token = "bench-streams"
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
                       "DJANGO_SETTINGS_MODULE": "bench.settings", "LOG_LEVEL": "ERROR",
                       "METRICS_TOKEN": metrics_token})
    if args.stream_max_seconds:
        os.environ["JOBBOX_STREAM_MAX_SECONDS"] = str(args.stream_max_seconds)
    servers: dict[str, Any] = {}
    clients: list[subprocess.Popen[str]] = []
    result: dict[str, Any] = {"command": " ".join(["python -m bench.streams", *argv]),
                              "started_at": dt.datetime.now(dt.UTC).isoformat(),
                              "open_files_limit": result_limit,
                              "load_average_at_start": os.getloadavg(),
                              "source_addresses": 1 + (args.streams - 1)
                              // STREAMS_PER_SOURCE_ADDRESS}
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        total = args.streams + args.other_streams + args.unwatched
        tokens, owners = create_people(total)
        tenant_id = tokens[0][0]
        warm_people(tenant_id, tokens, owners)
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
        pauses = log_dir / "streams-a-gc-pauses.jsonl"
        pauses.unlink(missing_ok=True)
        servers = {name: one_process_server(name, pauses if args.gc_pauses and name == "a"
                                            else None).spawn(log_dir) for name in ("a", "b")}
        for server in servers.values():
            server.wait_ready()
        pid_a = worker_pid(servers["a"])
        groups = {"a": (0, args.streams), "b": (args.streams, args.other_streams)}
        before = {"rss_kb": rss_kb(pid_a), "threads": threads(pid_a),
                  "redis_connections": redis_connections(pid_a, redis_server.port)}
        for name, (start, count) in groups.items():
            tokens_file = log_dir / f"streams-{name}-tokens.json"
            tokens_file.write_text(json.dumps([t for _, t in tokens[start:start + count]]))
            clients.append(subprocess.Popen(
                [sys.executable, "-m", "bench.streams", "client", servers[name].base_url,
                 str(tokens_file), str(log_dir / f"streams-{name}-receipts.json")],
                cwd=BASE_DIR, stdout=subprocess.PIPE, text=True))
        result["opened"] = {name: json.loads(c.stdout.readline())
                            for name, c in zip(groups, clients, strict=True)}
        time.sleep(2)  # starts settle (thread pool, allocator)
        after = {"rss_kb": rss_kb(pid_a), "threads": threads(pid_a),
                 "redis_connections": redis_connections(pid_a, redis_server.port)}
        opened_a = result["opened"]["a"]["opened"]
        result["process_a"] = {
            "before": before, "after_streams_opened": after, "streams": opened_a,
            "kb_per_stream": round((after["rss_kb"] - before["rss_kb"]) / max(1, opened_a), 1),
        }
        read_before = {n: metric(s.base_url, metrics_token,
                                 "jobbox_stream_history_entries_read_total")
                       for n, s in servers.items()}
        # Every person gets transitions, watched by A, by B or by nobody, in a mixed order.
        shuffled = owners[:]
        random.Random(12).shuffle(shuffled)
        result["transitions_started_at"] = time.time()
        started = drive(shuffled, tenant_id, args.rate, args.seconds)
        time.sleep(DRAIN_SECONDS)
        result["load_average_at_end"] = os.getloadavg()
        result["process_a"]["during_transitions"] = {
            "rss_kb": rss_kb(pid_a), "threads": threads(pid_a),
            "redis_connections": redis_connections(pid_a, redis_server.port)}
        read = {n: metric(s.base_url, metrics_token, "jobbox_stream_history_entries_read_total")
                - read_before[n] for n, s in servers.items()}
        for client in clients:
            client.send_signal(signal.SIGTERM)
            client.wait(timeout=60)
        receipts = json.loads((log_dir / "streams-a-receipts.json").read_text())
        receipts += json.loads((log_dir / "streams-b-receipts.json").read_text())
        watched_by = {owner: name for name, (start, count) in groups.items()
                      for owner in owners[start:start + count]}
        of_watched = {k: v for k, v in started.items() if v[0] in watched_by}
        result["latency_transition_to_client"] = latencies(of_watched, receipts)
        if args.gc_pauses:
            result["latency_timeline"] = latency_timeline(
                of_watched, receipts, result["transitions_started_at"])
        result["events_read_by_process"] = {
            n: {"watched_people": count, "history_entries_read": read[n],
                "transitions_of_its_people": sum(1 for owner, _, _ in started.values()
                                                 if watched_by.get(owner) == n),
                "all_transitions": len(started)}
            for n, (_, count) in groups.items()}
        for server in servers.values():
            server.stop()
        if args.gc_pauses:
            from bench.gcpauses import read_pauses, summarize

            result["gc_pauses_a"] = summarize(read_pauses(pauses),
                                              result["transitions_started_at"])
        if not args.skip_redis_memory:
            result["redis_memory"] = redis_memory(redis_server.url, tenant_id, owners)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        for server in servers.values():
            server.stop()
        redis_server.stop()
    out = args.out or BASE_DIR / "bench" / "results" / (
        f"streams-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%MZ')}.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
