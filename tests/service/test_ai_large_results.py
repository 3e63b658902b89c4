"""A result too large to carry whole: a poll and the box carry its summary and the links to
its pages (the full result read page by page, tenant-checked); a summary still too large for
the Redis snapshot is read from the database at most once per window per process (never once
per poll), the same JSON on every path."""

import json
import threading
import time

import pytest
from prometheus_client import REGISTRY

from jobbox import large_fields
from jobbox.caches import LargeValueCache
from process_tools import wait_until
from tests.ai_helpers import (
    done_job,
    poll,
    processing_job,
    status_key,
    stored_snapshot,
    submit,
)
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db(transaction=True)

INLINE_LIMIT_BYTES = 1024
# A worker grades a 900-row sheet in seconds; a minute covers a loaded machine.
JOB_TIMEOUT_SECONDS = 60
LARGE = {"students": [{"student": f"학생 {n}", "total": n} for n in range(200)]}
# No list to cut: its summary is itself, still over the 1 KiB limit of these tests.
WIDE = {"comment": "학생 " * 400}


def reads(source):
    return REGISTRY.get_sample_value("jobbox_large_field_reads_total",
                                     {"kind": "ai_job", "source": source}) or 0.0


class SteppedClock:
    """A clock the test moves by hand (the only fake: time itself)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def small_limit(settings):
    settings.AI_RESULT_INLINE_MAX_BYTES = INLINE_LIMIT_BYTES


@pytest.fixture
def clock(monkeypatch):
    stepped = SteppedClock()
    monkeypatch.setattr(large_fields.cache, "clock", stepped)
    large_fields.cache.clear()
    yield stepped
    large_fields.cache.clear()


def test_the_default_limit_is_64_kib(settings):
    assert settings.AI_RESULT_INLINE_MAX_BYTES == 64 * 1024


def test_a_large_result_travels_as_a_summary_linking_to_its_pages(
        alice, settings, django_assert_num_queries):
    settings.AI_RESULT_INLINE_MAX_BYTES = 4 * 1024
    job_id = done_job(alice, LARGE)
    poll(alice, job_id)  # principal cache filled
    with django_assert_num_queries(0):  # the summary rides in Redis
        response = poll(alice, job_id)
    result = response.json()["result"]
    assert result["students"] == LARGE["students"][:settings.AI_RESULT_PREVIEW_ITEMS]
    assert result["pages"] == {"students": {
        "count": 200, "url": f"/api/ai/jobs/{job_id}/result/students/"}}
    assert len(response.content) < 4 * 1024
    small = done_job(alice, {"students": [{"student": "Kim", "total": 1}]})
    assert stored_snapshot(small)["fields"]["result"] == {"students": [{"student": "Kim",
                                                                        "total": 1}]}


def test_the_pages_hold_the_whole_result_for_its_tenant_only(alice, bob, settings):
    settings.AI_RESULT_INLINE_MAX_BYTES = 4 * 1024
    job_id = done_job(alice, LARGE)
    url = poll(alice, job_id).json()["result"]["pages"]["students"]["url"]
    pages = [alice.client().get(url, {"page": n, "page_size": 64}).json() for n in (1, 2, 3, 4)]
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    assert {(p["count"], p["pages"], p["page_size"], p["section"]) for p in pages} == {
        (200, 4, 64, "students")}
    assert [item for p in pages for item in p["items"]] == LARGE["students"]
    default = alice.client().get(url).json()
    assert (default["page_size"], len(default["items"])) == (settings.AI_RESULT_PAGE_SIZE, 100)
    # Out of range or not a number: clamped to what exists, never an error.
    assert alice.client().get(url, {"page": 99, "page_size": "x"}).json()["page"] == 2
    most = alice.client().get(url, {"page_size": 10**9}).json()["page_size"]
    assert most == settings.AI_RESULT_PAGE_SIZE_MAX
    # Another tenant's job, a missing one, a section that is not a list, a running job: 404.
    assert bob.client().get(url).status_code == 404
    assert alice.client().get(f"/api/ai/jobs/{'Z' * 32}/result/students/").status_code == 404
    assert alice.client().get(f"/api/ai/jobs/{job_id}/result/nothing/").status_code == 404
    running = processing_job(alice)
    assert alice.client().get(f"/api/ai/jobs/{running}/result/students/").status_code == 404
    assert alice.client().get("/api/ai/jobs/bad!/result/students/").status_code == 404


def test_the_box_of_several_10000_row_results_stays_small(alice, settings):
    rows = {"subjects": ["Math"], "students": [
        {"student": f"student {n:05d}", "scores": {"Math": n % 101}, "total": n % 101}
        for n in range(10_000)]}
    full_bytes = len(json.dumps(rows))
    for _ in range(3):
        done_job(alice, rows)
    box = alice.client().get("/api/jobbox/")
    assert box.status_code == 200 and len(box.json()["jobs"]) == 3
    # Each job's summary: 20 of its rows and a link, not its 10,000 rows (about 700 KB).
    assert full_bytes > 500_000
    assert len(box.content) < 3 * 4 * 1024


def test_polls_of_a_large_result_read_the_database_once_per_window(
        alice, small_limit, clock, django_assert_num_queries, settings):
    job_id = done_job(alice, WIDE)
    poll(alice, job_id)  # principal cache filled
    large_fields.cache.clear()  # a process that has not seen this job yet
    before = {source: reads(source) for source in ("db", "process")}
    with django_assert_num_queries(1):
        first = poll(alice, job_id)
    with django_assert_num_queries(0):
        for _ in range(20):
            again = poll(alice, job_id)
    assert first.json()["result"] == WIDE
    assert stored_snapshot(job_id)["fields"]["result"] is None  # over the limit: not in Redis
    assert again.content == first.content
    assert reads("db") - before["db"] == 1
    assert reads("process") - before["process"] == 20

    clock.now += settings.AI_RESULT_WINDOW_SECONDS - 1
    with django_assert_num_queries(0):
        poll(alice, job_id)
    clock.now += 1  # the window is over: one read for the next window
    with django_assert_num_queries(1):
        later = poll(alice, job_id)
    with django_assert_num_queries(0):
        poll(alice, job_id)
    assert later.content == first.content


def test_a_cold_cache_with_a_large_result_costs_one_read_and_renders_the_same_json(
        alice, small_limit, clock, django_assert_num_queries):
    job_id = done_job(alice, WIDE)
    from_redis = poll(alice, job_id)
    outside_redis().delete(status_key(job_id))
    large_fields.cache.clear()
    with django_assert_num_queries(1):  # the row read fills Redis and this process' cache
        from_database = poll(alice, job_id)
    with django_assert_num_queries(0):
        warm = poll(alice, job_id)
    assert from_redis.content == from_database.content == warm.content


def test_concurrent_polls_in_one_process_share_one_read():
    cache = LargeValueCache(max_bytes=1024)
    reads = []
    start = threading.Barrier(8)

    def load():
        reads.append(1)
        time.sleep(0.05)  # a slow database: the other threads arrive meanwhile
        return {"big": True}, 12

    answers = []

    def poller():
        start.wait()
        value, _ = cache.get_or_load(("ai_job", "j", "result", 3), load, window_seconds=30)
        answers.append(value)

    threads = [threading.Thread(target=poller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(reads) == 1
    assert answers == [{"big": True}] * 8


def test_the_process_cache_is_bounded_in_bytes_and_drops_the_least_recent():
    cache = LargeValueCache(max_bytes=100)

    def put(name, size_bytes):
        cache.put(("k", name, "r", 1), name, size_bytes=size_bytes, window_seconds=30)

    put("a", 40)
    put("b", 40)
    assert cache.get(("k", "a", "r", 1)) == (True, "a")  # a is recent now
    put("c", 40)
    assert cache.get(("k", "b", "r", 1)) == (False, None)
    assert cache.get(("k", "a", "r", 1)) == (True, "a")
    put("huge", 101)  # larger than the whole cache: not kept
    assert cache.get(("k", "huge", "r", 1)) == (False, None)


def test_a_kept_value_expires_after_its_window():
    clock = SteppedClock()
    cache = LargeValueCache(max_bytes=100, clock=clock)
    cache.put(("k", "a", "r", 1), "a", size_bytes=1, window_seconds=30)
    clock.now += 29
    assert cache.get(("k", "a", "r", 1)) == (True, "a")
    clock.now += 1
    assert cache.get(("k", "a", "r", 1)) == (False, None)


def test_a_worker_made_result_over_64_kib_is_polled_as_a_summary_at_zero_sql(
        worker, alice, django_assert_num_queries):
    from tests.ai_helpers import sheet_bytes

    rows = [["Student", "Korean", "Math", "English"]]
    rows += [[f"student {n:04d}", n % 101, (n * 7) % 101, (n * 13) % 101] for n in range(900)]
    job_id = submit(alice, sheet_bytes(rows)).json()["job_id"]
    assert wait_until(lambda: poll(alice, job_id).json()["status"] in ("DONE", "FAILED"),
                      timeout_seconds=JOB_TIMEOUT_SECONDS, interval_seconds=0.1)
    assert stored_snapshot(job_id)["fields"]["result"]["pages"]  # the summary is in Redis
    with django_assert_num_queries(0):
        response = poll(alice, job_id)
    body = response.json()
    assert body["status"] == "DONE"
    assert len(response.content) < 64 * 1024
    result = body["result"]
    assert result["summary"] == {"rows": 900, "valid_rows": 900, "bad_rows": 0}
    assert result["students"][0]["total"] == max(
        n % 101 + (n * 7) % 101 + (n * 13) % 101 for n in range(900))
    assert result["report_url"] == f"/api/ai/jobs/{job_id}/report/"
    students = result["pages"]["students"]
    assert students["count"] == 900
    page = alice.client().get(students["url"], {"page": 9}).json()
    assert [s["rank"] for s in page["items"]] == sorted(s["rank"] for s in page["items"])
    assert page["count"] == 900 and len(page["items"]) == 100
