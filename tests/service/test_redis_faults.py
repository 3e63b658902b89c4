"""Redis stopped, restarted and slowed under load (docs/explanation/invariants.md, invariant 6), on
a private server.

Pollers are threads using the Django test client, so the whole request is measured:
authentication, the read path and the breaker. SQL is counted on every thread's connection.
"""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import redis

from academy.tenants.models import Membership
from academy.videos import services
from academy.videos.models import Video
from jobbox import conf, keys
from jobbox.breaker import State
from jobbox.client import get_breaker
from process_tools import wait_until
from tests.faults import SqlCounter, closing_connections, private_redis_server
from tests.video_helpers import made_elsewhere, new_video, poll

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]

POLLER_THREADS = 6
JOBS = 3
REDIS_DOWN_SECONDS = 3.0
# "Within seconds": the breaker probes every 2 s, then fills cost one read per job.
BACK_TO_ZERO_SQL_WITHIN_SECONDS = 15.0
QUIET_WINDOW_SECONDS = 1.0
PAUSE_SECONDS = 5.0
# Intervals long enough that a slow shared machine cannot make a test cross one by accident.
SLOW_MACHINE_PROOF = {"BREAKER_OPEN_SECONDS": 60, "OUTAGE_COPY_SECONDS": 60,
                      "PRINCIPAL_OUTAGE_COPY_SECONDS": 60}


@pytest.fixture
def private_redis():
    with private_redis_server() as server:
        yield server


def running_videos(member, n: int) -> list[Video]:
    videos = [new_video(member, title=f"Lecture {i}") for i in range(n)]
    for video in videos:
        services.mark_processing(video.pk, worker_id="w1")
        made_elsewhere(video)
    return videos


@dataclass
class Load:
    """Threads polling the jobs through the test client until stopped; every answer kept."""

    member: object
    videos: list[Video]
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        for n in range(POLLER_THREADS):
            thread = threading.Thread(target=closing_connections(self._poll), args=(n,))
            thread.start()
            self.threads.append(thread)
        return self

    def _poll(self, n: int) -> None:
        client = self.member.client()
        i = n
        while not self.stop.is_set():
            video = self.videos[i % len(self.videos)]
            try:
                response = client.get(f"/api/videos/{video.pk}/")
            except Exception as exc:  # the test client re-raises a view's exception: a 500
                self.answers.append((time.monotonic(), 500, repr(exc)))
                continue
            body = response.json() if response.status_code == 200 else None
            ok = body is not None and body["id"] == video.pk and body["status"] == "PROCESSING"
            self.answers.append((time.monotonic(), response.status_code, "ok" if ok else None))
            i += 1

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def between(self, start: float, end: float) -> list[tuple[float, int, str | None]]:
        return [a for a in self.answers if start <= a[0] < end]


def test_redis_stopped_and_restarted_mid_load_fails_no_request_and_bounds_sql(
        alice, private_redis):
    videos = running_videos(alice, JOBS)
    poll(alice, videos[0].pk)
    load = Load(alice, videos).start()
    try:
        time.sleep(0.5)
        with SqlCounter() as sql:
            stopped_at = time.monotonic()
            private_redis.stop()
            time.sleep(REDIS_DOWN_SECONDS)
            private_redis.start()
            restarted_at = time.monotonic()
            sql_while_down = sql.count()

            # Back to zero SQL: a whole quiet window with polls answered and no statement.
            def quiet_window() -> bool:
                before = sql.count()
                start = time.monotonic()
                time.sleep(QUIET_WINDOW_SECONDS)
                return sql.count() == before and len(load.between(start, time.monotonic())) > 0

            back_to_zero = wait_until(quiet_window, timeout_seconds=BACK_TO_ZERO_SQL_WITHIN_SECONDS)
            quiet_at = time.monotonic()
    finally:
        load.finish()

    statuses = Counter((code, ok) for _, code, ok in load.answers)
    assert statuses == {(200, "ok"): len(load.answers)}, statuses  # no failed request
    down = restarted_at - stopped_at
    polls_while_down = len(load.between(stopped_at, restarted_at))
    # Per process, whatever the number of jobs: one query for all of them per
    # OUTAGE_COPY_SECONDS, two statements (tokens with users, memberships) per
    # PRINCIPAL_OUTAGE_COPY_SECONDS; +2 intervals each for the edges.
    bound = ((down / conf.settings().OUTAGE_COPY_SECONDS + 2)
             + 2 * (down / conf.settings().PRINCIPAL_OUTAGE_COPY_SECONDS + 2))
    print(f"Redis down {down:.1f} s: {polls_while_down} polls, {sql_while_down} SQL statements "
          f"(bound {bound:.0f}); zero SQL again {quiet_at - restarted_at:.1f} s after restart")
    assert sql_while_down <= bound, (sql_while_down, bound)
    assert back_to_zero, sql.statements[-20:]
    assert get_breaker().state is State.CLOSED


def test_redis_paused_answers_within_the_timeout_with_one_database_read(alice, private_redis,
                                                                       settings):
    settings.JOBBOX = {**settings.JOBBOX, **SLOW_MACHINE_PROOF}
    (video,) = running_videos(alice, 1)
    assert poll(alice, video.pk).status_code == 200  # principal and snapshot cached
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("CLIENT", "PAUSE", round(PAUSE_SECONDS * 1000), "ALL")
    paused_until = time.monotonic() + PAUSE_SECONDS
    try:
        with SqlCounter() as sql:
            first = poll(alice, video.pk)
            answered_at = time.monotonic()
            video_reads_first = sql.count(Video._meta.db_table)
            second = poll(alice, video.pk)  # breaker open, copies cached: no Redis, no SQL
            statements_after_first = sql.count()
            video_reads_second = sql.count(Video._meta.db_table) - video_reads_first
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "PROCESSING"
    assert answered_at < paused_until  # answered while Redis was still paused
    assert video_reads_first == 1
    assert video_reads_second == 0
    assert statements_after_first == sql.count()
    assert get_breaker().state is not State.CLOSED


def test_while_the_breaker_is_open_polls_make_no_redis_call(alice, private_redis, monkeypatch,
                                                            settings):
    settings.JOBBOX = {**settings.JOBBOX, **SLOW_MACHINE_PROOF}
    (video,) = running_videos(alice, 1)
    poll(alice, video.pk)
    private_redis.stop()
    assert poll(alice, video.pk).status_code == 200  # the failure that opens the breaker
    calls = []
    monkeypatch.setattr(redis.Redis, "execute_command",
                        lambda *a, **k: calls.append(a) or None)
    monkeypatch.setattr(redis.client.Pipeline, "execute",
                        lambda *a, **k: calls.append(a) or [])
    for _ in range(20):
        assert poll(alice, video.pk).status_code == 200
    assert calls == []


def test_authentication_reads_the_database_once_per_interval_while_redis_is_down(
        alice, private_redis, django_assert_max_num_queries, settings):
    settings.JOBBOX = {**settings.JOBBOX, **SLOW_MACHINE_PROOF}
    (video,) = running_videos(alice, 1)
    private_redis.stop()
    poll(alice, video.pk)
    with django_assert_max_num_queries(0):
        for _ in range(50):
            assert poll(alice, video.pk).status_code == 200


def test_a_membership_change_while_redis_is_down_applies_within_the_fallback_interval(
        alice, bob, private_redis, settings):
    settings.JOBBOX = {**settings.JOBBOX, "PRINCIPAL_OUTAGE_COPY_SECONDS": 0.5,
                       "OUTAGE_COPY_SECONDS": 0.5}
    (video,) = running_videos(alice, 1)
    private_redis.stop()
    assert poll(alice, video.pk).status_code == 200
    membership = Membership.objects.get(user=alice.user)
    membership.tenant = bob.tenant
    membership.save()
    assert wait_until(lambda: poll(alice, video.pk).status_code == 404, timeout_seconds=5)


def test_a_deactivation_while_the_breaker_is_open_still_invalidates_the_cached_principal(
        alice, private_redis, settings):
    settings.JOBBOX = {**settings.JOBBOX, "BREAKER_OPEN_SECONDS": 60}
    (video,) = running_videos(alice, 1)
    assert poll(alice, video.pk).status_code == 200  # the principal is cached in Redis
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("CLIENT", "PAUSE", 400, "ALL")
    assert poll(alice, video.pk).status_code == 200  # a timeout: the breaker opens
    assert get_breaker().state is State.OPEN
    assert wait_until(lambda: admin.ping(), timeout_seconds=5)  # Redis answers again
    token_key = keys.token_principal_key(alice.token)
    assert admin.exists(token_key)
    alice.user.is_active = False
    alice.user.save()  # the invalidation is worth a try whatever the breaker says
    assert json.loads(admin.get(token_key)).keys() == {"revoked"}  # a mark, no principal
    admin.close()
