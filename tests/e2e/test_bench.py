"""The benchmark's own logic (bench/): counter deltas, /proc parsing, scaling, the rate search,
recovery time, the load client's statistics, report rendering, and one small real run of the
harness against a live server."""

import json
import os
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from bench import analysis, report
from bench.harness import Footprint, Harness, run_load, split_reads, subtract
from bench.load import LoadSpec, Sample, Target, latency_summary, percentile, timeline
from bench.pgstats import (
    CLOCK_TICKS_PER_SECOND,
    CpuMeter,
    DatabaseCounters,
    TableCounters,
    counters_from_rows,
    proc_cpu_seconds,
)

# --- /proc and counters ---------------------------------------------------------------------


def test_proc_stat_cpu_is_counted_from_the_last_parenthesis_of_the_command_name():
    # comm "post gres) x" holds a space and a ')': fields must be counted after the last ')'.
    fields_after_name = ["S"] + [str(n) for n in range(4, 14)] + ["250", "150"] + ["0"] * 30
    line = "4242 (post gres) x) " + " ".join(fields_after_name)
    assert proc_cpu_seconds(line) == pytest.approx(400 / CLOCK_TICKS_PER_SECOND)


def test_cpu_meter_counts_a_process_born_in_the_window_from_zero_and_others_from_the_start():
    pid = os.getpid()
    known = CpuMeter()
    known.observe([pid], baseline=True)  # present when the window opened
    assert known.seconds() == 0.0
    born = CpuMeter()
    born.observe([pid])  # first seen inside the window: all of its CPU is the window's
    assert born.first[pid] == 0.0
    assert born.seconds() == born.last[pid] > 0
    born.observe([999_999_999])  # no such process: ignored, not an error
    assert list(born.last) == [pid]


def test_counter_delta_subtracts_per_table_and_counts_new_tables_from_zero():
    before = DatabaseCounters(xact_commit=100, tup_fetched=10, tables={
        "videos_video": TableCounters(seq_scan=1, idx_scan=10),
        "auth_user": TableCounters(idx_scan=5),
    })
    after = DatabaseCounters(xact_commit=160, tup_fetched=70, tables={
        "videos_video": TableCounters(seq_scan=1, idx_scan=40, autovacuum_count=1),
        "auth_user": TableCounters(idx_scan=5),
        "ai_aijob": TableCounters(idx_scan=7),
    })
    delta = after.minus(before)
    assert delta.xact_commit == 60
    assert delta.tup_fetched == 60
    assert delta.tables["videos_video"].scans == 30
    assert delta.tables["ai_aijob"].scans == 7
    assert delta.scans(("videos_video", "ai_aijob", "missing")) == 37
    assert delta.autovacuum_visits() == 1


def test_counters_from_rows_reads_nulls_as_zero():
    counters = counters_from_rows(
        {"xact_commit": 5, "xact_rollback": None, "tup_returned": 1, "tup_fetched": 2},
        [{"relname": "videos_video", "seq_scan": 3, "idx_scan": None}],
    )
    assert counters.xact_rollback == 0
    assert counters.tables["videos_video"] == TableCounters(seq_scan=3)


def test_known_work_is_subtracted_by_table_group_and_never_goes_negative():
    delta = DatabaseCounters(xact_commit=50, tables={
        "videos_video": TableCounters(idx_scan=44),
        "authtoken_token": TableCounters(seq_scan=3),
        "tenants_tenant": TableCounters(idx_scan=4),
    })
    measured = split_reads(delta, ("videos_video",))
    assert measured == Footprint(job_reads=44, auth_reads=3, other_reads=4, transactions=50)
    churn = Footprint(job_reads=4, auth_reads=1, other_reads=1, transactions=3)
    monitor = Footprint(transactions=2)
    left = subtract(measured, (churn, 10), (monitor, 1))
    assert left == Footprint(job_reads=4, auth_reads=0, other_reads=0, transactions=18)


# --- analysis -------------------------------------------------------------------------------


def test_a_short_window_scales_to_the_seeds_ten_minutes():
    # The seed's "before": 5 polls/s, one SELECT each, measured for 12 s = 60 SELECTs.
    assert analysis.per_second(60, 12) == 5
    assert analysis.per_seed_period(60, 12) == 3000
    with pytest.raises(ValueError):
        analysis.per_second(1, 0)


def test_ratios_against_before_say_when_there_is_nothing_to_compare():
    assert analysis.format_ratio(0, 3000) == "0x"
    assert analysis.format_ratio(750, 3000) == "0.25x"
    assert analysis.format_ratio(1, 300) == "0.003x"  # small, but not zero
    assert analysis.format_ratio(31_000, 1000) == "31x"
    assert analysis.format_ratio(5, 0) == "—"


def test_rate_search_keeps_the_last_step_passed_before_the_first_failure():
    def step(rate: float, p99: float, errors: int = 0, achieved: float | None = None):
        return analysis.RateStep(rate, achieved or rate, p99, int(rate * 3), errors)

    steps = [step(900, 80), step(300, 10), step(600, 30), step(1200, 20)]
    best = analysis.highest_sustained(steps)
    assert best is not None and best.target_rps == 600  # 1200 passing later does not count
    assert not step(300, 10, errors=5).sustained
    assert not step(300, 10, achieved=200).sustained  # the client could not send the rate
    assert analysis.highest_sustained([step(300, 51)]) is None


def test_bisection_steps_between_a_pass_and_a_failure_refine_the_highest_rate():
    def step(rate: float, passed: bool):
        return analysis.RateStep(rate, rate, 10 if passed else 80, int(rate * 3), 0)

    # Coarse 1000 passes, 1600 fails; then 1300 passes, 1450 fails, 1375 passes.
    steps = [step(1000, True), step(1600, False), step(1300, True), step(1450, False),
             step(1375, True)]
    best = analysis.highest_sustained(steps)
    assert best is not None and best.target_rps == 1375


def test_a_rate_search_steps_up_then_bisects_between_its_last_pass_and_first_failure():
    from bench.scenarios import FULL, RateSearch

    search, tried = RateSearch("jobbox", []), []
    while (rate := search.next_rate(FULL)) is not None:
        tried.append(rate)
        search.record(rate, rate <= 1300)
    assert tried == [100, 200, 350, 600, 1000, 1600, 1300, 1450, 1375]
    assert (search.passed, search.failed) == (1300, 1375)


def test_cpu_per_request_and_the_median_of_rounds():
    assert analysis.cpu_ms_per_request(0.5, 2000) == 0.25
    assert analysis.cpu_ms_per_request(0.5, 0) is None
    assert analysis.median_of([0.3, None, 0.1, 0.2]) == 0.2
    assert analysis.median_of([0.4, 0.2]) == pytest.approx(0.3)
    assert analysis.median_of([None]) is None


def test_recovery_is_the_first_second_from_which_reads_and_errors_stay_normal():
    reads = [5, 5, 200, 200, 200, 90, 4, 30, 5, 5, 5]
    errors = [0] * len(reads)
    kwargs = {"returned_at": 5, "baseline_reads": 5, "slack_reads": 5}
    # Second 7 spikes again: recovery counts from second 8, three seconds after the return.
    assert analysis.recovery_seconds(reads, errors, **kwargs) == 3
    assert analysis.recovery_seconds([5] * 11, errors, **kwargs) == 0
    never = [*reads[:-1], 200]
    assert analysis.recovery_seconds(never, errors, **kwargs) is None
    failing = [*errors[:-1], 3]
    assert analysis.recovery_seconds(reads, failing, **kwargs) is None


def test_differences_turn_a_cumulative_counter_into_per_interval_counts():
    assert analysis.differences([10, 10, 15, 30]) == [0, 5, 15]


def test_each_way_of_serving_polls_its_own_path_for_the_same_job():
    from bench.scenarios import SERVER_OF, poll_path

    assert poll_path("jobbox", "video", 7) == "/api/videos/7/"
    assert poll_path("jobbox", "ai", "k3y") == "/api/ai/jobs/k3y/"
    assert poll_path("before", "video", 7) == "/bench/before/videos/7/"
    assert poll_path("cachalot", "video", 7) == poll_path("before", "video", 7)
    assert poll_path("before-conn0", "ai", "k3y") == "/bench/before/ai/jobs/k3y/"
    assert poll_path("seed", "ai", "k3y") == "/bench/seed/ai/jobs/k3y/"
    assert poll_path("ceiling", "video", 7) == "/bench/redis-get/7/"
    assert SERVER_OF == {"cachalot": "cachalot", "before-conn0": "conn0"}


# --- the load client ------------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([], 0.99) == 0.0
    assert latency_summary([3.0, 1.0, 2.0])["max"] == 3.0


def test_timeline_counts_requests_and_failures_per_second():
    samples = [Sample(0.1, 2.0, 200), Sample(0.9, 4.0, 500), Sample(1.5, 1.0, 0),
               Sample(1.6, 3.0, 200)]
    rows = timeline(samples)
    assert [(r["t"], r["requests"], r["errors"]) for r in rows] == [(0, 2, 1), (1, 2, 1)]


def test_load_specs_only_target_loopback_and_are_bounded():
    spec = LoadSpec("http://127.0.0.1:8000", [Target("/a/"), Target("/b/")],
                    rate_per_target_hz=2, duration_seconds=10)
    spec.validate()
    assert spec.request_budget() == 2 * 21
    with pytest.raises(ValueError, match="loopback"):
        LoadSpec("http://10.0.0.5:8000", [Target("/a/")]).validate()
    with pytest.raises(ValueError):
        LoadSpec("http://127.0.0.1:8000", [Target("/a/")], duration_seconds=3600).validate()


# --- the report -----------------------------------------------------------------------------


def record(scenario: str, variant: str, *, polls: int, job_reads: float, window: float = 12,
           label: str = "5 running jobs, 1 poll/s each", **extra: object) -> dict:
    base = {"scenario": scenario, "variant": variant, "label": label, "window_seconds": window,
            "polls": polls, "ok": polls, "errors": {}, "latency_ms": {"p50": 2.0, "p99": 9.0},
            "achieved_rps": polls / window, "job_reads": job_reads, "auth_reads": 2 * polls,
            "other_reads": 0.0, "transactions": job_reads + polls, "tup_fetched": 0,
            "backend_cpu_s": job_reads / 1000, "app_cpu_s": 0.1, "autovacuum": False,
            "writer_steps": 0, "events": 0, "bytes_read": 0, "notes": [], "timeline": []}
    return {**base, **extra}


def results_fixture() -> dict:
    s1 = [record("s1", "before", polls=60, job_reads=60), record("s1", "seed", polls=60,
          job_reads=0), record("s1", "cachalot", polls=60, job_reads=15),
          record("s1", "jobbox", polls=60, job_reads=0)]
    steps = lambda *rates: [{"target_rps": r, "achieved_rps": r, "p99_ms": p, "requests": r,  # noqa: E731
                             "errors": 0, "sustained": p < 50, "latency_ms": {}}
                            for r, p in rates]
    return {
        "profile": "quick", "started_at": "2026-11-26T14:00:00+00:00", "duration_seconds": 90,
        "machine": {"cores": 2, "cpu": "test cpu", "memory_gib": 23.5, "kernel": "6",
                    "load_average": [1.0, 1.0, 1.0]},
        "load_average_at_end": [2.0, 1.0, 1.0],
        "versions": {"django": "5.2"}, "conn_max_age": 60,
        "servers": {"main": {"workers": 2, "threads": 4, "settings": "bench.settings"}},
        "commands": ["python -m bench.run --quick"],
        "availability": {"ai": "AI jobs: not available in this build"},
        "calibration": {"monitor": {"transactions": 2}, "churn_step": {"job_reads": 4,
                                                                        "transactions": 3}},
        "late_counters": {"job_reads": 0, "all_reads": 0, "transactions": 1},
        "profile_settings": {"s1_window": 12, "s2_window": 4, "churn_per_second": 1,
                             "rate_step_seconds": 2, "rate_steps": [300, 600],
                             "s5_pre": 2, "s5_outage": 30},
        "records": s1,
        "extra": {
            # before's 600 failed, was retried and failed again; jobbox's passed on retry.
            "rate_search": {"before": steps((300, 20), (600, 90), (600, 95)),
                            "jobbox": steps((300, 5), (600, 70), (600, 9)),
                            "ceiling": steps((300, 3), (600, 4))},
            "s5": {"jobbox": {"reads_per_second": [0, 0, 200, 200, 0], "errors_per_second":
                              [0] * 5, "stopped_at": 2, "returned_at": 4,
                              "recovery_seconds": 0, "outage_reads_per_second": 200}},
        },
    }


def test_report_scales_the_seed_table_and_states_ratios_and_missing_parts(tmp_path):
    results = results_fixture()
    paths = report.write(results, tmp_path)
    text = paths["markdown"].read_text()
    assert paths["markdown"].name == "20261126-1400Z-quick.md"
    # 60 SELECTs in 12 s = 5/s = 3,000 per 10 minutes: the seed's "before", reproduced.
    assert "| seed's load (5 running jobs at 1 Hz): job SELECTs/s | 5.0 | 0 | 1.2 | 0 |" in text
    assert "| … per 10 minutes (scaled) | 3,000 | 0 | 750 | 0 |" in text
    assert "| 0.25x |" in text  # cachalot against before
    assert "AI jobs: not available in this build" in text
    assert "| ≥ 600 req/s |" in text and "| 300 req/s |" in text  # jobbox, before
    assert "| 600 req/s (p99 95.0 ms" in text  # before's decisive (last) attempt at 600
    assert "2 cores" in text and "python -m bench.run --quick" in text
    for png in ("reads", "rates", "redis-outage"):
        assert (tmp_path / f"20261126-1400Z-quick-{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(paths["json"].read_text())["profile"] == "quick"


def test_readme_headline_is_replaced_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{report.README_START}\nold table\n{report.README_END}\n\nTail\n")
    assert report.update_readme(readme, results_fixture(), Path("bench/results/x.md"))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Title") and text.endswith("Tail\n")
    assert "| … per 10 minutes (scaled) | 3,000 |" in text
    assert f"command `{results_fixture()['commands'][0]}`" in text
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not report.update_readme(plain, results_fixture(), Path("x.md"))


# --- one small real run ---------------------------------------------------------------------


@pytest.fixture
def bench_server(transactional_db, tmp_path):
    from bench.stack import Server
    from jobbox import conf
    from tests.workers import test_database_url

    server = Server("smoke", "bench.settings", {
        "DATABASE_URL": test_database_url(), "REDIS_URL": conf.settings().REDIS_URL})
    server.start(tmp_path)
    yield server
    server.stop()


def test_the_harness_polls_a_bench_server_and_every_way_answers_the_same_body(alice, bench_server):
    from academy.videos import services

    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="Smoke")
    services.mark_processing(video.pk, worker_id="smoke")
    services.report_video_progress(video.pk, percent=40, step_name="transcode 360p")
    bodies = set()
    for path in (f"/api/videos/{video.pk}/", f"/bench/before/videos/{video.pk}/",
                 f"/bench/seed/videos/{video.pk}/"):
        spec = LoadSpec(bench_server.base_url, [Target(path, alice.token)] * 3,
                        rate_per_target_hz=2, duration_seconds=1)
        result = run_load(spec)
        assert result["requests"] == 6 and result["ok"] == 6, result
        request = urllib.request.Request(bench_server.base_url + path,
                                         headers={"Authorization": f"Token {alice.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            bodies.add(answer.read())
    assert len(bodies) == 1
    burst = LoadSpec(bench_server.base_url, [Target(f"/bench/before/videos/{video.pk}/",
                                                   "wrong-token")] * 5, mode="burst")
    result = run_load(burst)
    assert result["ok"] == 0 and result["errors"] == {"401": 5}


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="PostgreSQL's statistics views count the work (DATABASE_URL)")
def test_postgres_counts_one_job_select_per_before_poll_and_none_for_jobbox(alice,
                                                                              bench_server):
    from academy.videos import services
    from bench.pgstats import Monitor
    from bench.stack import APP_PREFIX, SERVER_PREFIX, maintenance_dsn
    from tests.workers import test_database_url

    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="Counted")
    services.mark_processing(video.pk, worker_id="smoke")
    url = test_database_url()
    monitor = Monitor(maintenance_dsn(url), connection.settings_dict["NAME"], APP_PREFIX,
                      SERVER_PREFIX)
    harness = Harness(monitor, ("videos_video",))
    try:
        jobbox = harness.measure("smoke", "jobbox", "jobbox", bench_server, LoadSpec(
            bench_server.base_url, [Target(f"/api/videos/{video.pk}/", alice.token)] * 4,
            rate_per_target_hz=2, duration_seconds=1))
        before = harness.measure("smoke", "before", "before", bench_server, LoadSpec(
            bench_server.base_url, [Target(f"/bench/before/videos/{video.pk}/",
                                          alice.token)] * 4,
            rate_per_target_hz=2, duration_seconds=1))
    finally:
        monitor.close()
    assert before.ok == before.polls == 8
    assert before.job_reads == 8  # one primary-key SELECT of the job per poll
    assert before.transactions >= 8 * 3  # + token auth and the tenant, at least
    assert jobbox.ok == jobbox.polls == 8
    assert jobbox.job_reads == 0


# --- the baseline views ---------------------------------------------------------------------


@pytest.fixture
def running_video(alice):
    from academy.videos import services

    video = services.create_video(tenant_id=alice.tenant.pk, uploaded_by_id=alice.user.pk,
                                  title="Baseline")
    services.mark_processing(video.pk, worker_id="w")
    services.report_video_progress(video.pk, percent=30, step_name="probe")
    return video


@pytest.mark.urls("bench.urls")
@pytest.mark.django_db(transaction=True)
def test_before_reads_the_database_on_every_poll_and_answers_what_jobbox_does(
        alice, bob, running_video, django_assert_num_queries):
    path = f"/bench/before/videos/{running_video.pk}/"
    with django_assert_num_queries(3):  # token + user, membership, the video row
        before = alice.client().get(path)
    assert before.status_code == 200
    assert before.content == alice.client().get(f"/api/videos/{running_video.pk}/").content
    assert bob.client().get(path).status_code == 404  # another tenant's video


@pytest.mark.urls("bench.urls")
@pytest.mark.django_db(transaction=True)
def test_seed_as_written_skips_the_database_on_a_hit_and_never_fills_a_miss(
        alice, running_video, django_assert_num_queries):
    from jobbox import keys
    from tests.redis_peek import outside_redis
    from tests.video_helpers import stored_snapshot

    path = f"/bench/seed/videos/{running_video.pk}/"
    with django_assert_num_queries(1):  # stock DRF token auth only
        assert alice.client().get(path).json()["status"] == "PROCESSING"
    outside_redis().delete(keys.status_key("video", str(running_video.pk)))
    for _ in range(2):  # every miss reads the database again: nothing is stored
        with django_assert_num_queries(3):
            assert alice.client().get(path).status_code == 200
    assert stored_snapshot(running_video.pk) is None


@pytest.mark.urls("bench.urls")
@pytest.mark.django_db(transaction=True)
def test_the_ceiling_is_one_redis_get_with_no_sql(running_video, client,
                                                   django_assert_num_queries):
    from jobbox import keys
    from tests.redis_peek import outside_redis

    with django_assert_num_queries(0):
        response = client.get(f"/bench/redis-get/{running_video.pk}/")
    # The stored value itself, whatever its format: the ceiling does no decoding.
    assert response.content == outside_redis().get(keys.status_key("video",
                                                                   str(running_video.pk)))
    assert client.get("/bench/redis-get/not%20an%20id/").status_code == 404


def test_the_stream_mode_counts_server_sent_events():
    import asyncio

    from aiohttp import web

    from bench import load
    from process_tools import free_port

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n in range(3):
            await response.write(f"id: {n}\ndata: {{\"n\": {n}}}\n\n".encode())
        await asyncio.sleep(1.5)  # then stays open, as a stream does, past the read window
        return response

    async def scenario() -> load.LoadResult:
        app = web.Application()
        app.router.add_get("/stream", events)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            spec = LoadSpec(f"http://127.0.0.1:{port}", [Target("/stream", "t")] * 2,
                            mode="stream", duration_seconds=0.5)
            return await load.run(spec)
        finally:
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert result.ok == 2 and result.events == 6 and result.errors == {}
    assert result.bytes_read > 0


# --- the curves -----------------------------------------------------------------------------


def curve_stamp(name: str) -> dict:
    return {"curve": name, "command": f"python -m bench.curves {name}", "date": "2026-12-08",
            "machine": "test x86_64, 2 cores", "redis": "7.0", "load_average": [1.0, 1, 1]}


def test_each_curve_plot_states_where_it_came_from(tmp_path):
    from bench import curves

    latency = {"p50_ms": 2.0, "p99_ms": 9.0, "p99_9_ms": 12.0, "max_ms": 20.0}
    figures = {
        "db-reads": {"points": [{"variant": v, "jobs": n, "job_reads_per_second": r,
                                 "all_reads_per_second": r, "ok": n, "polls": n,
                                 "achieved_rps": n}
                                for v, r in (("jobbox", 0), ("before", 100)) for n in (10, 100)]},
        "streams": {"points": [{"streams": n, "opened": n, "kb_per_stream": 28.0,
                                "redis_connections": 4, "latency_ms": latency,
                                "load_average": [1.0, 1, 1]} for n in (1000, 2000)]
                    + [{"streams": 50000, "not_run": "open files are capped"}]},
        "outage": {"processes": [1, 2], "points": [
            {"processes": w, "jobs": 100, "outage_job_reads_per_second": w,
             "outage_job_reads_per_second_per_process": 1.0} for w in (1, 2)]},
        "gc-pauses": {"run": {"opened": {"a": {"opened": 10}}, "latency_timeline": [
            {"t": 0, **latency}, {"t": 10, **latency}], "gc_pauses_a": {
                "all": {"collections": 3, "p99_9_ms": 4.0, "max_ms": 900.0},
                "long_pauses": [[5.0, 2, 900.0], [6.0, 0, 6.0]]}}},
    }
    for name, figure in figures.items():
        plot = curves.SWEEPS[name][1]
        path = curves.write({**curve_stamp(name), **figure}, plot, tmp_path)
        assert json.loads(path.read_text())["command"] == f"python -m bench.curves {name}"
        assert path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_a_stream_curve_point_keeps_what_the_run_measured_or_why_it_did_not_run():
    from bench.curves import stream_point

    assert stream_point({"not_run": "capped", "returncode": 2})["not_run"] == "capped"
    after = {"rss_kb": 2000, "threads": 4, "redis_connections": 4}
    run = {"process_a": {"streams": 1000, "kb_per_stream": 28.5, "after_streams_opened": after,
                         "during_transitions": after},
           "opened": {"a": {"opened": 1000, "refused": 0, "open_seconds": 3.0}},
           "latency_transition_to_client": {"matched": 50, "from_call_return": {"p99_ms": 9}},
           "load_average_at_start": [1.0, 1, 1], "load_average_at_end": [2.0, 1, 1]}
    point = stream_point(run)
    assert (point["opened"], point["kb_per_stream"], point["redis_connections"]) == (1000, 28.5, 4)
    assert point["latency_ms"] == {"p99_ms": 9}


def test_stream_latency_per_interval_counts_each_transition_in_the_interval_it_returned():
    from bench.streams import latency_timeline

    started = {("1", "READY"): (7, 100.0, 100.5), ("2", "READY"): (7, 101.0, 112.0),
               ("3", "READY"): (7, 101.0, 113.0)}  # job 3's event never arrived
    receipts = [["1", "READY", 100.52], ["2", "READY", 112.2], ["2", "READY", 115.0]]
    rows = latency_timeline(started, receipts, since=100.0)
    assert [(r["t"], r["transitions"]) for r in rows] == [(0.0, 1), (10.0, 1)]
    assert rows[0]["max_ms"] == pytest.approx(20, abs=0.1)
    assert rows[1]["p99_ms"] == pytest.approx(200, abs=0.1)  # the first receipt counts


def test_gc_pauses_are_summarized_from_the_start_with_long_ones_kept_one_by_one():
    from bench.gcpauses import summarize

    rows = [[99.0, 2, 500.0, 0]] + [[100.0 + n, 0, 0.1, 0] for n in range(998)] + [
        [1200.0, 2, 800.0, 12], [1201.0, 1, 6.0, 0]]
    summary = summarize(rows, since=100.0)
    assert summary["all"]["collections"] == 1000  # the one before `since` left out
    assert summary["all"]["max_ms"] == 800.0
    assert summary["all"]["p99_9_ms"] == 6.0
    assert summary["by_generation"]["2"] == {"collections": 1, "p50_ms": 800.0,
                                             "p99_ms": 800.0, "p99_9_ms": 800.0,
                                             "max_ms": 800.0}
    assert summary["long_pauses"] == [[1100.0, 2, 800.0], [1101.0, 1, 6.0]]


def test_the_gc_pause_launcher_times_the_collections_of_the_module_it_runs(tmp_path):
    import subprocess
    import sys

    from bench.gcpauses import read_pauses
    from bench.stack import BASE_DIR

    out = tmp_path / "pauses.jsonl"
    subprocess.run([sys.executable, "-m", "bench.gcpauses", str(out), "--", "-m", "timeit",
                    "-n", "1", "-r", "1", "import gc; gc.collect()"], cwd=BASE_DIR,
                   check=True, capture_output=True, timeout=60)
    rows = read_pauses(out)
    assert any(generation == 2 for _, generation, _, _ in rows)  # the explicit collect
    assert all(pause_ms >= 0 for _, _, pause_ms, _ in rows)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="PostgreSQL's statistics views count the work (DATABASE_URL)")
def test_the_db_reads_curve_counts_no_job_read_for_jobbox_and_one_per_poll_before(
        transactional_db, tmp_path):
    import subprocess
    import sys

    import psycopg

    from bench.stack import BASE_DIR, maintenance_dsn
    from tests.workers import test_database_url

    own = test_database_url() + "_curve"  # the sweep drops and creates it
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    try:
        subprocess.run([sys.executable, "-m", "bench.curves", "--database-url", own,
                        "--results-dir", str(tmp_path), "db-reads", "--jobs", "4",
                        "--seconds", "2"], cwd=BASE_DIR, env=env, check=True, timeout=300)
    finally:
        with psycopg.connect(maintenance_dsn(own), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {own.rsplit('/', 1)[1]} WITH (FORCE)")
    [path] = tmp_path.glob("curve-db-reads-*.json")
    points = {p["variant"]: p for p in json.loads(path.read_text())["points"]}
    assert points["jobbox"]["ok"] == points["jobbox"]["polls"] == 8
    assert points["jobbox"]["job_reads_per_second"] == 0
    assert points["before"]["job_reads_per_second"] == 4  # 4 jobs, one poll a second each
    assert path.with_suffix(".png").exists()
