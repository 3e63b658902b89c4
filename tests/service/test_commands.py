"""The demo commands and the operational endpoints."""

import io
import json
import os
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from academy.videos.models import Video
from tests.video_helpers import poll

pytestmark = pytest.mark.django_db(transaction=True)


def demo_member(demo: dict, n: int) -> SimpleNamespace:
    token = demo["tenants"][n]["users"][0]["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return SimpleNamespace(client=lambda: client)


def bootstrap() -> dict:
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    return json.loads(out.getvalue())


def test_bootstrap_demo_is_idempotent_and_prints_working_credentials(client):
    first, second = bootstrap(), bootstrap()
    assert first == second
    assert [t["slug"] for t in first["tenants"]] == ["seoul-academy", "busan-academy"]
    user = first["tenants"][0]["users"][0]
    assert client.login(username=user["username"], password=user["password"])


def test_simulate_jobs_drives_videos_to_the_end_through_the_api():
    demo = bootstrap()
    out = io.StringIO()
    call_command("simulate_jobs", tenant="seoul-academy", videos=3, seconds=1, fail=1, stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["kind"] for line in lines] == ["video"] * 3
    assert {line["tenant"] for line in lines} == {"seoul-academy"}
    statuses = sorted(Video.objects.filter(pk__in=[x["id"] for x in lines])
                      .values_list("status", flat=True))
    assert statuses == ["FAILED", "READY", "READY"]

    seoul, busan = (demo_member(demo, n) for n in (0, 1))
    assert poll(seoul, lines[1]["id"]).json()["status"] == "READY"
    assert poll(busan, lines[1]["id"]).status_code == 404


def test_simulate_jobs_refuses_an_unknown_tenant():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("simulate_jobs", tenant="nowhere", videos=1, seconds=1)


def test_metrics_need_a_token_or_staff(client, settings):
    assert client.get("/metrics").status_code == 401
    settings.JOBBOX = {**settings.JOBBOX, "METRICS_TOKEN": "s3cret"}
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    assert b"jobbox_reads_total" in response.content


def test_healthz_answers_ok(client):
    assert client.get("/healthz").json() == {"status": "ok", "redis": "ok", "database": "ok"}


def simulate(**options) -> list[dict]:
    out = io.StringIO()
    call_command("simulate_jobs", tenant="seoul-academy", stdout=out, stderr=io.StringIO(),
                 **options)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_simulated_jobs_get_distinct_titles_and_a_ready_video_has_nothing_to_play():
    demo = bootstrap()
    seoul = demo_member(demo, 0)
    first = simulate(videos=2, ai=1, seconds=0.5)
    second = simulate(videos=2, ai=1, seconds=0.5)
    ids = [line["id"] for line in first + second if line["kind"] == "video"]
    titles = [poll(seoul, video_id).json()["title"] for video_id in ids]
    assert titles == [f"Simulated lecture {n}" for n in (1, 2, 3, 4)]
    assert {(poll(seoul, video_id).json()["status"], poll(seoul, video_id).json()["hls_path"])
            for video_id in ids} == {("READY", None)}
    sheets = [line["id"] for line in first + second if line["kind"] == "ai_job"]
    names = [seoul.client().get(f"/api/ai/jobs/{job_id}/").json()["file_name"]
             for job_id in sheets]
    assert names == ["simulated-scores-1.xlsx", "simulated-scores-2.xlsx"]


@pytest.mark.e2e  # background jobs that run for seconds
def test_simulate_jobs_in_the_background_returns_while_its_jobs_run(monkeypatch, settings,
                                                                    tmp_path):
    from jobbox import conf
    from tests.workers import test_database_url

    # The detached process works on this test's database and Redis, and logs beside them.
    monkeypatch.setenv("DATABASE_URL", test_database_url())
    monkeypatch.setenv("REDIS_URL", conf.settings().REDIS_URL)
    settings.RUN_DIR = tmp_path
    bootstrap()
    err = io.StringIO()
    out = io.StringIO()
    call_command("simulate_jobs", tenant="seoul-academy", videos=2, ai=1, seconds=3,
                 background=True, stdout=out, stderr=err)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    pid = int(err.getvalue().split("(pid ")[1].split(")")[0])
    # Returned with its jobs started, not finished: they need 3 s of driving after this.
    video_ids = [line["id"] for line in lines if line["kind"] == "video"]
    assert set(Video.objects.filter(pk__in=video_ids).values_list("status", flat=True)) == {
        "PROCESSING"}
    _, status = os.waitpid(pid, 0)  # the detached driver, started by this process
    assert os.waitstatus_to_exitcode(status) == 0, (tmp_path / "simulate_jobs.log").read_text()
    assert set(Video.objects.filter(pk__in=video_ids).values_list("status", flat=True)) == {
        "READY"}
    # Its output is where the command said: the drive's start and each job's end.
    logged = [json.loads(line) for line in (tmp_path / "simulate_jobs.log").read_text()
              .splitlines() if line.startswith("{")]
    assert logged[0] == {"driving": 3, "seconds": 3.0}
    assert sorted(line["status"] for line in logged[1:]) == ["DONE", "READY", "READY"]
