"""The database down or its connections killed: polls Redis can answer keep answering, the
rest get a clear 503 (docs/explanation/invariants.md, invariant 7)."""

import threading
import time

import psycopg
import pytest
from django.db import close_old_connections, connection

from academy.videos import services
from jobbox import keys
from tests.faults import closing_connections, database_unreachable
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)

POLLER_THREADS = 4
KILL_ROUNDS = 8
KILL_PAUSE_SECONDS = 0.25


def running_video(member):
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=30, step_name="transcode")
    return video


def assert_clear_503(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "The service is temporarily unavailable. "
                                          "Please retry shortly."}
    assert response["Retry-After"]
    assert b"Traceback" not in response.content and b"Error" not in response.content


def test_polls_of_jobs_in_redis_keep_answering_while_the_database_is_unreachable(alice):
    video = running_video(alice)
    before = poll(alice, video.pk)
    with database_unreachable():
        during = poll(alice, video.pk)
    assert during.status_code == 200
    assert during.content == before.content


def test_a_job_redis_does_not_hold_answers_a_clear_503_while_the_database_is_unreachable(alice):
    cached, uncached = running_video(alice), running_video(alice)
    poll(alice, cached.pk)
    outside_redis().delete(keys.status_key("video", str(uncached.pk)))
    with database_unreachable():
        assert poll(alice, cached.pk).status_code == 200
        assert_clear_503(poll(alice, uncached.pk))
    assert poll(alice, uncached.pk).status_code == 200  # and back once it returns


def test_an_uncached_token_answers_503_not_401_while_the_database_is_unreachable(alice, bob):
    video = running_video(alice)
    outside_redis().delete(keys.token_principal_key(bob.token))
    with database_unreachable():
        assert_clear_503(poll(bob, video.pk))


def test_healthz_answers_ok_from_redis_alone_while_the_database_is_unreachable(client):
    with database_unreachable():
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "down"


def kill_test_database_backends() -> int:
    """pg_terminate_backend on every other backend of the test database (only ours)."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                         user=db["USER"], password=db["PASSWORD"] or None,
                         dbname=db["NAME"], autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


def test_polls_of_running_jobs_succeed_while_database_connections_are_killed(alice):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL; CI runs this on PostgreSQL")
    videos = [running_video(alice) for _ in range(3)]
    poll(alice, videos[0].pk)
    answers: list[int] = []
    stop = threading.Event()

    def poller(n: int) -> None:
        client = alice.client()
        i = n
        while not stop.is_set():
            video = videos[i % len(videos)]
            response = client.get(f"/api/videos/{video.pk}/")
            ok = response.status_code == 200 and response.json()["status"] == "PROCESSING"
            answers.append(200 if ok else response.status_code)
            i += 1

    threads = [threading.Thread(target=closing_connections(poller), args=(n,))
               for n in range(POLLER_THREADS)]
    for thread in threads:
        thread.start()
    killed = 0
    try:
        for _ in range(KILL_ROUNDS):
            killed += kill_test_database_backends()
            time.sleep(KILL_PAUSE_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    connection.close()  # ours was killed too
    assert killed >= 1
    assert answers and set(answers) == {200}, set(answers)


def test_a_poll_that_needs_the_database_reconnects_after_its_connection_was_killed(alice):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL; CI runs this on PostgreSQL")
    video = running_video(alice)
    poll(alice, video.pk)
    outside_redis().delete(keys.status_key("video", str(video.pk)))
    assert kill_test_database_backends() >= 1
    # What Django does as every real request starts (the test client skips it): with
    # CONN_HEALTH_CHECKS the dead connection is then checked and replaced before use.
    close_old_connections()
    try:
        response = poll(alice, video.pk)
    finally:
        connection.close()
    assert response.status_code == 200
    assert response.json()["status"] == "PROCESSING"
