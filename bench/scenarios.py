"""The six scenarios of the benchmark (docs/how-to/benchmarks.md), each serving the same data the
four ways side by side.

1. the seed's: 3 videos (+ 2 AI jobs when the AI app is installed) polled once a second;
2. a hundredfold: 500 running jobs, 500 pollers at 1 Hz, then the highest sustained rate;
3. the job box: 20 jobs per person, per-job polls vs one GET /api/jobbox/ vs the stream;
4. a cold key: 1,000 concurrent polls of one job whose snapshot was just deleted;
5. Redis stopped for 30 s under the scenario-2 load;
6. jobs finished more than an hour ago: the first poll and the next ones.

Jobs are created and moved through the service's own functions (academy.videos.services,
`manage.py simulate_jobs`); parts another app provides run only when it is installed, and
the report says so when it was not.

Serves docs/explanation/invariants.md, invariants 1 and 6 are what scenarios 2-6 put under load.
"""

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from django.urls import Resolver404, resolve

from bench import analysis
from bench.harness import Churn, Harness, close_own_connections
from bench.load import LoadSpec, Target
from bench.pgstats import STATS_IDLE_FLUSH_SECONDS, machine_busy_share
from bench.stack import BASE_DIR, SERVER_WORKERS, Server
from process_tools import stop_process
from process_tools.redis_server import RedisServer

VARIANTS = ("before", "seed", "cachalot", "jobbox")
VARIANT_TITLES = {
    "before": "before (DB every poll)",
    "before-conn0": "before, CONN_MAX_AGE=0",
    "seed": "seed as written",
    "cachalot": "django-cachalot",
    "jobbox": "jobbox",
    "ceiling": "bare Redis GET (ceiling)",
    "jobbox-box": "jobbox job box (GET /api/jobbox/, 20 jobs each)",
    "jobbox-lagging": "jobbox, Redis back lagging",
}
# The rate search's way of polling a whole job box: one GET /api/jobbox/ per person.
BOX_VARIANT = "jobbox-box"
# simulate_jobs prints its jobs within seconds; a loaded machine gets room.
SIMULATE_START_TIMEOUT_SECONDS = 60.0
# The load process imports aiohttp and connects within this; events are timed from its start.
LOAD_START_DELAY_SECONDS = 2.5
# A server connection unused this long is between requests (a poll takes milliseconds).
QUIET_CONNECTION_SECONDS = 0.3
# A rate step that fails is run once more before the search stops (see scenario_2).
RATE_STEP_ATTEMPTS = 2
# Before each rate step the machine must be quiet: under this share of its CPU busy (the
# churn writer and the servers' idle work stay far below it), sampled over this long, waited
# for at most this long (a machine busy with other work measures anyway).
SETTLE_BUSY_SHARE = 0.15
SETTLE_SAMPLE_SECONDS = 0.5
SETTLE_MAX_SECONDS = 10.0
# Which server serves a way (bench.run starts them); the rest are served by "main".
SERVER_OF = {"cachalot": "cachalot", "before-conn0": "conn0"}
# The ways of serving that keep a cache of their own (warmed before a steady-state window).
CACHING_VARIANTS = frozenset({"cachalot", "jobbox", BOX_VARIANT})
# Long enough to poll every target once without a burst.
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Profile:
    """How long and how big each scenario is; QUICK keeps `make bench` under two minutes."""

    name: str
    s1_window: float
    people: int
    jobs_per_person: int
    s2_window: float
    churn_per_second: float
    rate_steps: tuple[int, ...]
    rate_step_seconds: float
    rate_variants: tuple[str, ...]
    s3_window: float
    burst: int
    s5_pre: float
    s5_outage: float
    s5_post: float
    s5_variants: tuple[str, ...]
    s6_jobs: int
    s6_next_polls: int
    # Scenario 5's own servers: gunicorn workers each (a team behind a load balancer runs
    # many; per-process copies are what an outage multiplies).
    s5_workers: int = SERVER_WORKERS
    # Polled jobs finished while Redis is away (jobbox runs): their Redis writes are lost, so
    # Redis comes back without them (empty) or older (lagging) and must be put right.
    s5_finish_jobs: int = 0
    # One more jobbox run where Redis comes back with what it held at the stop (a replica
    # promoted without the outage's writes) instead of empty.
    s5_lagging: bool = False
    # Polls per job per second in scenario 5 (1: the scenario-2 load).
    s5_poll_hz: float = 1.0
    # Extra ways measured in scenario 2 only: "before-conn0" is the before view on Django's
    # default CONN_MAX_AGE=0 (a new database connection per request).
    s2_extra_variants: tuple[str, ...] = ()
    # Bisection steps between the last rate sustained and the first that was not: each one
    # halves the gap, so ratios between ways are not hostage to the coarse steps.
    rate_refine_steps: int = 0
    # App CPU per poll side by side: every rate-search way at one modest rate, in interleaved
    # rounds, so a burst of other work on a shared machine lands on all of them alike.
    cpu_rate: int = 100
    cpu_step_seconds: float = 4
    cpu_rounds: int = 3


FULL = Profile(
    name="full", s1_window=10, people=25, jobs_per_person=20, s2_window=12,
    # 500 running jobs of ~8 minutes each: about one starts and one finishes every second.
    churn_per_second=1.0,
    rate_steps=(100, 200, 350, 600, 1000, 1600, 2500, 4000), rate_step_seconds=3,
    rate_variants=("before", "seed", "cachalot", "jobbox", BOX_VARIANT, "ceiling"),
    s3_window=10, burst=1000, s5_pre=4, s5_outage=30, s5_post=12,
    # "before" reads no status from Redis: its reads stay one per poll (scenario 2).
    s5_variants=("before", "seed", "cachalot", "jobbox"), s6_jobs=50, s6_next_polls=4,
    s2_extra_variants=("before-conn0",), rate_refine_steps=3, s5_workers=8, s5_finish_jobs=20,
    s5_lagging=True,
)
QUICK = Profile(
    name="quick", s1_window=2, people=10, jobs_per_person=20, s2_window=2,
    churn_per_second=1.0, rate_steps=(150, 400), rate_step_seconds=2,
    rate_variants=("before", "jobbox", BOX_VARIANT, "ceiling"),
    s3_window=2, burst=300, s5_pre=1, s5_outage=3, s5_post=3,
    s5_variants=("jobbox",), s6_jobs=20, s6_next_polls=1,
)


@dataclass
class Person:
    user_id: int
    token: str


@dataclass
class Bench:
    profile: Profile
    harness: Harness
    servers: dict[str, Server]
    redis: RedisServer
    cache_url: str
    tenant_id: int
    tenant_slug: str
    people: list[Person]
    ai_kind: str | None
    jobs: list[tuple[int, int]] = field(default_factory=list)  # (video id, person index)
    availability: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def server(self, variant: str) -> Server:
        return self.servers[SERVER_OF.get(variant, "main")]

    def path(self, variant: str, kind: str, job_id: int | str) -> str:
        return poll_path(variant, kind, job_id)

    def poll_spec(self, variant: str, targets: list[Target], *, seconds: float,
                  rate_hz: float = 1.0, mode: str = "poll",
                  base_url: str | None = None) -> LoadSpec:
        return LoadSpec(base_url=base_url or self.server(variant).base_url, targets=targets,
                        mode=mode,
                        rate_per_target_hz=rate_hz, duration_seconds=seconds,
                        max_connections=min(500, max(16, len(targets))))

    def job_targets(self, variant: str) -> list[Target]:
        return [Target(self.path(variant, "video", vid), self.people[p].token)
                for vid, p in self.jobs]


def poll_path(variant: str, kind: str, job_id: int | str) -> str:
    """The URL a way of serving answers a job's poll on (same data, different path)."""
    ai = kind != "video"
    if variant == "jobbox":
        return f"/api/ai/jobs/{job_id}/" if ai else f"/api/videos/{job_id}/"
    if variant == "ceiling":
        return f"/bench/redis-get/{job_id}/"
    # cachalot and CONN_MAX_AGE=0 serve the "before" view from servers of their own.
    base = "seed" if variant == "seed" else "before"
    return f"/bench/{base}/ai/jobs/{job_id}/" if ai else f"/bench/{base}/videos/{job_id}/"


# --- Driving jobs through the service -------------------------------------------------------


def start_video(tenant_id: int, user_id: int, title: str) -> int:
    """A new video moved to PROCESSING with one progress report, as a worker would."""
    from academy.videos import services

    video = services.create_video(tenant_id=tenant_id, uploaded_by_id=user_id, title=title)
    services.mark_processing(video.pk, worker_id="bench")
    services.report_video_progress(video.pk, percent=10, step_index=1, step_total=4,
                                   step_name="probe", step_percent=40)
    return video.pk


def finish_video(video_id: int) -> None:
    """The worker's success: READY with its HLS path."""
    from academy.videos import services

    services.complete_video(video_id, f"hls/{video_id}/master.m3u8", duration=600)


def churn_step(b: Bench) -> Callable[[], None]:
    """One job elsewhere starts and finishes: an insert and two updates on the job table."""
    def step() -> None:
        finish_video(start_video(b.tenant_id, b.people[0].user_id, "churn"))
    return step


def create_running_jobs(b: Bench) -> None:
    b.jobs = []
    for n in range(b.profile.people * b.profile.jobs_per_person):
        person = n % b.profile.people
        b.jobs.append((start_video(b.tenant_id, b.people[person].user_id, f"lecture {n}"),
                       person))
    b.harness.monitor.wait_gone(close_own_connections())


def warm(video_ids: list[int]) -> None:
    """Store every job's committed state in Redis again (after a restart emptied it)."""
    from academy.videos.models import Video
    from jobbox import cache_committed

    for video in Video.objects.filter(pk__in=video_ids):
        cache_committed(video)


def expire(b: Bench, video_ids: list[int]) -> None:
    """What an hour without a poll leaves: no snapshot, no progress, a cold ORM cache."""
    import redis

    from jobbox import keys, registry
    from jobbox.client import get_redis

    job = registry.get("video")
    names = []
    for vid in video_ids:
        names += [keys.status_key(job.status_namespace, str(vid)),
                  keys.progress_key(job.progress_namespace, str(vid))]
    get_redis().delete(*names)
    redis.Redis.from_url(b.cache_url).flushdb()  # the private Redis's cachalot database only


def warm_up(b: Bench, variant: str, targets: list[Target]) -> None:
    """One unmeasured poll of each target: the figures are the steady state, with the caches
    a running service has (jobbox's principals, cachalot's queries) already filled. The
    before and seed-as-written views keep no cache of their own, so they need none."""
    if variant not in CACHING_VARIANTS:
        return
    b.harness.run_load(b.poll_spec(variant, targets, seconds=WARM_UP_SECONDS,
                                   rate_hz=1 / WARM_UP_SECONDS))


def url_exists(path: str) -> bool:
    """Whether the servers' URLconf (bench.urls, the service's own included) has `path`."""
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


# --- Scenario 1 -----------------------------------------------------------------------------


def simulate_supports_ai() -> bool:
    """Whether this build's `simulate_jobs` can drive AI jobs (`--ai N`)."""
    done = subprocess.run([sys.executable, "manage.py", "simulate_jobs", "--help"], cwd=BASE_DIR,
                          capture_output=True, text=True, check=False, timeout=120)
    return "--ai" in done.stdout


def start_simulation(b: Bench, seconds: float, *, ai: int) -> tuple[subprocess.Popen[str],
                                                                     list[dict[str, Any]]]:
    command = [sys.executable, "manage.py", "simulate_jobs", "--tenant", b.tenant_slug,
               "--videos", "3", "--seconds", str(int(seconds))]
    if ai:
        command += ["--ai", str(ai)]
    b.harness.commands.append(" ".join(["python", *command[1:]]))
    # Inherits the writers' settings (bench.run: cachalot installed, so it invalidates).
    env = {**os.environ, "BENCH_APPLICATION_NAME": "bench-sim"}
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    jobs: list[dict[str, Any]] = []
    deadline = time.monotonic() + SIMULATE_START_TIMEOUT_SECONDS
    while len(jobs) < 3 + ai and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            with contextlib.suppress(ValueError):
                jobs.append(json.loads(line))
    if len(jobs) < 3 + ai:
        process.kill()
        raise RuntimeError("simulate_jobs did not start its jobs")
    return process, jobs


def scenario_1(b: Bench, prepare: Callable[[], None]) -> None:
    ai = 2 if b.ai_kind and simulate_supports_ai() else 0
    if b.ai_kind and not ai:
        b.availability["s1-ai"] = ("scenario 1's AI jobs: `simulate_jobs --ai` is not "
                                   "available in this build; 3 videos only")
    window = b.profile.s1_window
    lifetime = STATS_IDLE_FLUSH_SECONDS + len(VARIANTS) * (window + 15) + 120
    process, jobs = start_simulation(b, lifetime, ai=ai)
    started = time.monotonic()
    try:
        prepare()  # scenario 2's jobs are created while simulate_jobs' counters settle
        # simulate_jobs keeps its connection open: its last counters arrive ~10 s later.
        time.sleep(max(0.0, started + STATS_IDLE_FLUSH_SECONDS - time.monotonic()))
        token = b.people[0].token
        for variant in VARIANTS:
            targets = [Target(b.path(variant, str(j["kind"]), j.get("id", j.get("job_id"))),
                              token) for j in jobs]
            warm_up(b, variant, targets)
            b.harness.measure("s1", variant, f"{len(jobs)} running jobs, 1 poll/s each",
                              b.server(variant), b.poll_spec(variant, targets, seconds=window))
    finally:
        stop_process(process, grace_seconds=30)
    b.extra["s1_jobs"] = jobs


# --- Scenario 2 -----------------------------------------------------------------------------


def scenario_2(b: Bench) -> None:
    for variant in (*VARIANTS, *b.profile.s2_extra_variants):
        warm_up(b, variant, b.job_targets(variant))
        record = b.harness.measure(
            "s2", variant, f"{len(b.jobs)} running jobs, 1 poll/s each", b.server(variant),
            b.poll_spec(variant, b.job_targets(variant), seconds=b.profile.s2_window),
            churn=Churn(churn_step(b), b.profile.churn_per_second),
        )
        if variant == "before-conn0":
            # Its backends live for one request, shorter than the CPU sampling interval.
            record.backend_cpu_s = None
            record.notes.append("DB backend CPU not measured: a backend per request lives "
                                "shorter than the sampling interval")
    rate_search(b)


def rate_targets(b: Bench, variant: str) -> list[Target]:
    """What a way polls in the rate search: every running job, or every person's box."""
    if variant == BOX_VARIANT:
        return [Target("/api/jobbox/", p.token) for p in b.people]
    return b.job_targets(variant)


@dataclass
class RateSearch:
    """One way's search: coarse steps up to its first failure, then bisection between the
    last rate it sustained and the first it did not."""

    variant: str
    targets: list[Target]
    passed: int = 0
    failed: int = 0
    refined: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)

    def next_rate(self, profile: Profile) -> int | None:
        if not self.failed:
            return next((r for r in profile.rate_steps if r > self.passed), None)
        if self.refined >= profile.rate_refine_steps:
            return None
        return (self.passed + self.failed) // 2

    def record(self, rate: int, sustained: bool) -> None:
        self.refined += 1 if self.failed else 0
        if sustained:
            self.passed = rate
        else:
            self.failed = rate


def rate_search(b: Bench) -> None:
    """Scenario 2's highest sustained rate, per way (`python -m bench.run --scenarios rates`
    runs it alone). The ways take their steps in turn, not one whole search after another,
    so a burst of other work on a shared machine falls on all of them alike."""
    searches = [RateSearch(v, rate_targets(b, v)) for v in b.profile.rate_variants]
    for search in searches:
        warm_up(b, search.variant, search.targets)
    with Churn(churn_step(b), b.profile.churn_per_second):
        while due := [(s, rate) for s in searches
                      if (rate := s.next_rate(b.profile)) is not None]:
            for search, rate in due:
                search.record(rate, rate_step_attempts(b, search.variant, search.targets,
                                                       rate, search.steps))
    b.extra["rate_search"] = {s.variant: s.steps for s in searches}
    b.extra["cpu_per_poll"] = cpu_side_by_side(b)


def cpu_side_by_side(b: Bench) -> dict[str, Any]:
    """The workers' CPU per request of each way at `cpu_rate`, round after round."""
    rounds: dict[str, list[float | None]] = {v: [] for v in b.profile.rate_variants}
    with Churn(churn_step(b), b.profile.churn_per_second):
        for _ in range(b.profile.cpu_rounds):
            for variant in b.profile.rate_variants:
                settle()
                server = b.server(variant)
                targets = rate_targets(b, variant)
                cpu_before = server.workers_cpu_seconds()
                result = b.harness.run_load(b.poll_spec(
                    variant, targets, seconds=b.profile.cpu_step_seconds,
                    rate_hz=b.profile.cpu_rate / len(targets)))
                rounds[variant].append(analysis.cpu_ms_per_request(
                    server.workers_cpu_seconds() - cpu_before, result["ok"]))
    return {"rate": b.profile.cpu_rate, "seconds": b.profile.cpu_step_seconds,
            "ms_per_poll": rounds}


def rate_step_attempts(b: Bench, variant: str, targets: list[Target], rate: int,
                       steps: list[dict[str, Any]]) -> bool:
    """One rate, tried again once if it fails (a shared machine has bursts of other work)."""
    for attempt in range(1, RATE_STEP_ATTEMPTS + 1):
        step = rate_step(b, variant, targets, rate)
        steps.append({**step, "attempt": attempt})
        if step["sustained"]:
            return True
    return False


def settle() -> float:
    """Wait (at most SETTLE_MAX_SECONDS) until the machine is quiet: a step that overloaded
    the database ("before") leaves work behind (its backends, the workers' garbage), which
    would otherwise fall on the next way's step. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_MAX_SECONDS:
        if machine_busy_share(SETTLE_SAMPLE_SECONDS) < SETTLE_BUSY_SHARE:
            break
    return round(time.monotonic() - started, 1)


def rate_step(b: Bench, variant: str, targets: list[Target], rate: int) -> dict[str, Any]:
    """Poll every target at `rate` requests per second in total for one step; the workers'
    CPU time (from /proc) per request served is the app's CPU per poll."""
    settled_seconds = settle()
    server = b.server(variant)
    cpu_before = server.workers_cpu_seconds()
    result = b.harness.run_load(b.poll_spec(
        variant, targets, seconds=b.profile.rate_step_seconds, rate_hz=rate / len(targets)))
    cpu_seconds = server.workers_cpu_seconds() - cpu_before
    step = analysis.RateStep(
        target_rps=rate, achieved_rps=result["achieved_rps"],
        p99_ms=result["latency_ms"].get("p99", 0.0), requests=result["requests"],
        errors=result["requests"] - result["ok"])
    return {**step.__dict__, "sustained": step.sustained, "latency_ms": result["latency_ms"],
            "settled_seconds": settled_seconds,
            "workers_cpu_s": round(cpu_seconds, 3),
            "app_cpu_ms_per_poll": analysis.cpu_ms_per_request(cpu_seconds, step.requests)}


# --- Scenario 3 -----------------------------------------------------------------------------


def scenario_3(b: Bench) -> None:
    if not url_exists("/api/jobbox/"):
        b.availability["s3"] = ("job box: not available in this build (GET /api/jobbox/ does "
                                "not resolve); scenario 3 skipped")
        return
    window = b.profile.s3_window
    server = b.servers["main"]
    warm_up(b, "jobbox", b.job_targets("jobbox"))
    b.harness.measure("s3", "jobbox", f"per job: {len(b.jobs)} polls/s", server,
                      b.poll_spec("jobbox", b.job_targets("jobbox"), seconds=window))
    people = [Target("/api/jobbox/", p.token) for p in b.people]
    warm_up(b, "jobbox", people)
    b.harness.measure("s3", "jobbox", f"job box: {len(people)} polls/s", server,
                      b.poll_spec("jobbox", people, seconds=window))
    if not url_exists("/api/jobbox/stream"):
        b.availability["s3-stream"] = ("job-box stream: not available in this build "
                                       "(GET /api/jobbox/stream does not resolve)")
        return
    # One stream per person, on the ASGI server (uvicorn) that serves the stream.
    streams = [Target("/api/jobbox/stream", p.token) for p in b.people]
    b.harness.measure("s3", "jobbox", f"stream: {len(streams)} open streams",
                      b.servers["stream"],
                      b.poll_spec("jobbox", streams, seconds=window, mode="stream",
                                  base_url=b.servers["stream"].base_url))


# --- Scenario 4 -----------------------------------------------------------------------------


def scenario_4(b: Bench) -> None:
    video_id, person = b.jobs[0]
    for variant in VARIANTS:
        expire(b, [video_id])
        targets = [Target(b.path(variant, "video", video_id), b.people[person].token)
                   ] * b.profile.burst
        b.harness.measure("s4", variant, f"{b.profile.burst} concurrent polls of a cold job",
                          b.server(variant), b.poll_spec(variant, targets, seconds=1,
                                                         mode="burst"))
        warm([video_id])


# --- Scenario 5 -----------------------------------------------------------------------------


def scenario_5(b: Bench) -> None:
    """Redis stopped under the scenario-2 load, on servers of `s5_workers` processes each."""
    p = b.profile
    runs = [(variant, variant, False) for variant in p.s5_variants]
    if p.s5_lagging and "jobbox" in p.s5_variants:
        runs.append(("jobbox-lagging", "jobbox", True))
    servers = _outage_servers(b, {SERVER_OF.get(v, "main") for _, v, _ in runs})
    timelines: dict[str, dict[str, Any]] = {}
    try:
        for name, variant, lagging in runs:
            timelines[name] = _outage_run(b, name, variant, lagging,
                                          servers[SERVER_OF.get(variant, "main")])
    finally:
        for server in servers.values():
            server.stop()
    warm([vid for vid, _ in b.jobs])
    b.extra["s5"] = timelines


def _outage_servers(b: Bench, names: set[str]) -> dict[str, Server]:
    """The scenario's own servers, as `bench.run` starts the others, with more processes."""
    settings_of = {"main": "bench.settings", "cachalot": "bench.settings_cachalot"}
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    servers = {name: Server(f"s5-{name}", settings_of[name], {},
                            workers=b.profile.s5_workers).spawn(log_dir) for name in names}
    for server in servers.values():
        server.wait_ready()
    b.harness.commands += [" ".join([f"DJANGO_SETTINGS_MODULE={s.settings_module}", "python",
                                     *s.command()[1:]]) for s in servers.values()]
    return servers


def _outage_run(b: Bench, name: str, variant: str, lagging: bool,
                server: Server) -> dict[str, Any]:
    p = b.profile
    total = p.s5_pre + p.s5_outage + p.s5_post
    warm([vid for vid, _ in b.jobs])
    spec = b.poll_spec(variant, b.job_targets(variant), seconds=total, base_url=server.base_url,
                       rate_hz=p.s5_poll_hz)
    spec.start_at = time.time() + LOAD_START_DELAY_SECONDS
    samples: list[tuple[float, float]] = []
    held: list[dict[int, int | None]] = []  # per second after the return: versions in Redis
    finishing = _still_running(b, p.s5_finish_jobs) if variant == "jobbox" else []

    def outage() -> None:
        assert spec.start_at is not None
        returns_at = spec.start_at + p.s5_pre + p.s5_outage
        sampler = threading.Thread(target=_sample_reads, daemon=True,
                                   args=(b, spec.start_at, total, samples, returns_at))
        sampler.start()
        finisher = _Finisher(finishing) if finishing else None
        time.sleep(max(0.0, spec.start_at + p.s5_pre - time.time()))
        if lagging:
            _redis_admin(b).save()  # what the promoted replica will hold: the state at the stop
        b.redis.stop()
        if finisher:  # their Redis writes fail: left to fills and the reconciler
            finisher.finish()
        time.sleep(max(0.0, returns_at - time.time()))
        b.redis.start()
        (b.redis.data_dir / "dump.rdb").unlink(missing_ok=True)
        _sample_held_versions(b, returns_at, p.s5_post, held)
        sampler.join()

    record = b.harness.measure("s5", name, f"Redis stopped {p.s5_outage:.0f} s",
                               server, spec, during=outage)
    return _outage_timeline(b, record, samples, held)


def _outage_timeline(b: Bench, record: Any, samples: list[tuple[float, float]],
                     held: list[dict[int, int | None]]) -> dict[str, Any]:
    p = b.profile
    total = p.s5_pre + p.s5_outage + p.s5_post
    reads = analysis.differences([s[0] for s in samples])[:int(total)]  # seconds under load
    statements = analysis.differences([s[1] for s in samples])[:int(total)]
    errors = [0.0] * len(reads)
    for row in record.timeline:
        if int(row["t"]) < len(errors):
            errors[int(row["t"])] = row["errors"]
    baseline = mean(reads[1:int(p.s5_pre)]) if int(p.s5_pre) > 1 else 0.0
    returned = int(p.s5_pre + p.s5_outage)
    during = slice(int(p.s5_pre) + 1, returned)
    stale = _stale_per_second(held)
    return {
        "reads_per_second": reads, "statements_per_second": statements,
        "errors_per_second": errors,
        "stopped_at": p.s5_pre, "returned_at": returned, "workers": p.s5_workers,
        "recovery_seconds": analysis.recovery_seconds(
            reads, errors, returned_at=returned, baseline_reads=baseline,
            slack_reads=max(5.0, 0.05 * len(b.jobs))),
        "outage_reads_per_second": mean(reads[during] or [0.0]),
        "outage_statements_per_second": mean(statements[during] or [0.0]),
        # Jobs whose Redis snapshot was older than the database's row, each second after the
        # return (a missing snapshot is filled from the database by its next poll: true).
        "stale_jobs_per_second": stale,
        "true_state_seconds": _first_quiet_second(stale),
    }


class _Finisher:
    """A worker elsewhere that finishes jobs on cue: a process of its own, started (Django
    imported, connected) before the stop, so its statements land at the stop. Not this
    process: the writers here run with cachalot, whose invalidation needs the stopped Redis."""

    SCRIPT = ("import sys, django; django.setup(); from bench.scenarios import finish_video; "
              "sys.stdin.readline(); [finish_video(int(v)) for v in sys.argv[1:]]")

    def __init__(self, video_ids: list[int]) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings",
               "BENCH_APPLICATION_NAME": "bench-drv-finisher", "LOG_LEVEL": "ERROR"}
        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT,
                                         *map(str, video_ids)], cwd=BASE_DIR, env=env,
                                        stdin=subprocess.PIPE, text=True)

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        if self.process.wait(timeout=SIMULATE_START_TIMEOUT_SECONDS):
            raise RuntimeError("the finisher failed: see its output above")


def _uncached() -> Any:
    """The database itself: this process runs with cachalot, whose cache the finisher (a
    process without it) and a Redis restored from a snapshot leave stale."""
    try:
        from cachalot.api import cachalot_disabled
    except ImportError:
        return contextlib.nullcontext()
    return cachalot_disabled()


def _still_running(b: Bench, count: int) -> list[int]:
    from academy.videos.models import Video

    ids = [vid for vid, _ in b.jobs]
    with _uncached():
        running = set(Video.objects.filter(pk__in=ids, status=Video.Status.PROCESSING)
                      .values_list("pk", flat=True))
    close_own_connections()
    return [vid for vid in ids if vid in running][:count]


def _redis_admin(b: Bench) -> Any:
    import redis

    return redis.Redis.from_url(b.redis.url)


def _held_version(raw: bytes | None, kind: str, job_id: str) -> int | None:
    from jobbox.model import decode_snapshot

    snapshot = decode_snapshot(raw, kind=kind, job_id=job_id) if raw else None
    return snapshot.version if snapshot else None


def _sample_held_versions(b: Bench, start_at: float, seconds: float,
                          out: list[dict[int, int | None]]) -> None:
    """Once a second from `start_at`: the version of every polled job's snapshot in Redis."""
    from jobbox import keys, registry

    job = registry.get("video")
    ids = [vid for vid, _ in b.jobs]
    client = _redis_admin(b)
    for second in range(int(seconds)):
        time.sleep(max(0.0, start_at + second - time.time()))
        pipe = client.pipeline(transaction=False)
        for vid in ids:
            pipe.get(keys.status_key(job.status_namespace, str(vid)))
        out.append({vid: _held_version(raw, job.kind, str(vid))
                    for vid, raw in zip(ids, pipe.execute(), strict=True)})
    client.close()


def _stale_per_second(held: list[dict[int, int | None]]) -> list[int]:
    """Jobs Redis held older than the database, per sampled second (read after the run: the
    database no longer changes once Redis is back)."""
    from academy.videos.models import Video

    if not held:
        return []
    with _uncached():
        truth = dict(Video.objects.filter(pk__in=list(held[0])).values_list("pk", "version"))
    close_own_connections()
    return [sum(1 for vid, version in second.items()
                if version is not None and version < truth.get(vid, 0)) for second in held]


def _first_quiet_second(stale: list[int]) -> int | None:
    """The first second after the return from which no job shows an older state; None: not
    within the record."""
    quiet: int | None = None
    for second in range(len(stale) - 1, -1, -1):
        if stale[second]:
            break
        quiet = second
    return quiet


def _sample_reads(b: Bench, start_at: float, seconds: float, out: list[tuple[float, float]],
                  flush_from: float) -> None:
    """Job-table scans and the database's transactions (one per statement: the servers run
    in autocommit), cumulative, once a second from `start_at`.

    A busy backend's counters arrive within about a second, so the curve lags the load by up
    to one second; a backend that goes idle sends its last ones ~10 s later, which would
    show as reads long after they happened. From `flush_from` (Redis is back: recovery is
    timed) each sample first closes the servers' idle connections, so they arrive now.
    """
    tables = b.harness.job_tables
    for second in range(int(seconds) + 2):
        time.sleep(max(0.0, start_at + second - time.time()))
        if time.time() >= flush_from:
            b.harness.monitor.close_app_backends(idle_for_seconds=QUIET_CONNECTION_SECONDS)
        counters = b.harness.monitor.counters()
        out.append((float(counters.scans(tables)), float(counters.xact_commit)))


# --- Scenario 6 -----------------------------------------------------------------------------


def scenario_6(b: Bench) -> None:
    person = b.people[0]
    ids = [start_video(b.tenant_id, person.user_id, f"old {n}") for n in range(b.profile.s6_jobs)]
    for vid in ids:
        finish_video(vid)
    b.harness.monitor.wait_gone(close_own_connections())
    for variant in VARIANTS:
        expire(b, ids)
        targets = [Target(b.path(variant, "video", vid), person.token) for vid in ids]
        b.harness.measure("s6", variant, "first poll of each", b.server(variant),
                          b.poll_spec(variant, targets, seconds=1))
        b.harness.measure("s6", variant, f"next {b.profile.s6_next_polls} poll(s) of each",
                          b.server(variant),
                          b.poll_spec(variant, targets, seconds=b.profile.s6_next_polls))
