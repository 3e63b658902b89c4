"""Cancel, retry, the job's log and its time left, through the API, on real Redis and the real
database; the workers are driven in-process here (tests/e2e has the real transcode)."""

import asyncio
import threading

import pytest
from django.db import connections

from academy.ai import services as ai
from academy.ai.job_types import JobContext
from academy.ai.job_types.grade_report import validate_rows
from academy.ai.tracking import KIND as AI_KIND
from academy.videos import reaper
from academy.videos import services as videos
from academy.videos.models import Video
from jobbox import (
    CancelRequested,
    CancelWatch,
    append_log,
    cancel_requested,
    keys,
    read_log,
    report_progress,
    request_cancel,
    write,
)
from jobbox.stream.history import resolve_entries
from tests.ai_helpers import new_job, processing_job, row, sheet_bytes, submit
from tests.ai_helpers import poll as poll_job
from tests.redis_peek import outside_redis, streaming
from tests.video_helpers import new_video, poll, stored_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def processing_video(member) -> Video:
    video = new_video(member)
    assert videos.mark_processing(video.pk, worker_id="w1")
    videos.report_video_progress(video.pk, percent=40, step_index=2, step_total=4,
                                 step_name="transcode 90p", step_percent=60)
    return video


def cancel(member, path: str):
    return member.client().post(f"{path}cancel/")


def retry(member, path: str):
    return member.client().post(f"{path}retry/")


# --- Cancel -------------------------------------------------------------------------------

def test_cancelling_a_processing_video_ends_it_cancelled_and_raises_at_its_next_report(
        alice, django_assert_num_queries):
    video = processing_video(alice)
    response = cancel(alice, f"/api/videos/{video.pk}/")
    assert response.status_code == 202
    assert response.json()["status"] == "CANCELLED"
    poll(alice, video.pk)  # fills the principal cache
    with django_assert_num_queries(0):
        body = poll(alice, video.pk).json()
    assert (body["status"], body["encoding_progress"], body["eta_seconds"]) == (
        "CANCELLED", 40, None)
    assert stored_snapshot(video.pk)["terminal"] is True
    assert cancel_requested("video", str(video.pk))
    # The worker learns it at its next progress report, without SQL.
    with django_assert_num_queries(0), pytest.raises(CancelRequested):
        videos.report_video_progress(video.pk, percent=50)
    # And its lease is gone: its end transitions are refused, the state stays CANCELLED.
    assert not videos.renew_video_lease(video.pk, worker_id="w1", lease_seconds=60)
    assert videos.complete_video(video.pk, "hls/x/master.m3u8", 2, worker_id="w1")[0] is False
    assert videos.fail_video(video.pk, "late", worker_id="w1")[0] is False
    assert Video.objects.get(pk=video.pk).status == "CANCELLED"


def test_a_queued_video_cancelled_is_never_started(alice):
    video = new_video(alice)
    assert cancel(alice, f"/api/videos/{video.pk}/").status_code == 202
    assert videos.mark_processing(video.pk, worker_id="w1") is False
    assert Video.objects.get(pk=video.pk).status == "CANCELLED"


def test_a_second_cancel_is_a_no_op(alice):
    video = processing_video(alice)
    assert cancel(alice, f"/api/videos/{video.pk}/").status_code == 202
    version = Video.objects.get(pk=video.pk).version
    again = cancel(alice, f"/api/videos/{video.pk}/")
    assert (again.status_code, again.json()["status"]) == (202, "CANCELLED")
    assert Video.objects.get(pk=video.pk).version == version


def test_another_tenants_cancel_is_the_same_404_as_a_missing_job(alice, bob):
    video = processing_video(alice)
    job_id = processing_job(alice)
    for path in (f"/api/videos/{video.pk}/", f"/api/ai/jobs/{job_id}/"):
        theirs = cancel(bob, path)
        missing = cancel(bob, "/api/videos/999999/")
        assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())
        assert theirs.status_code == 404
    assert Video.objects.get(pk=video.pk).status == "PROCESSING"
    assert row(job_id).status == "PROCESSING"
    assert not cancel_requested("video", str(video.pk))


def test_cancel_of_a_finished_job_is_409(alice):
    video = processing_video(alice)
    videos.complete_video(video.pk, f"hls/{video.pk}/1/master.m3u8", 2, worker_id="w1")
    response = cancel(alice, f"/api/videos/{video.pk}/")
    assert (response.status_code, response.json()["code"]) == (409, "finished")
    assert Video.objects.get(pk=video.pk).status == "READY"


def test_cancel_without_credentials_is_refused(alice, client):
    video = processing_video(alice)
    assert client.post(f"/api/videos/{video.pk}/cancel/").status_code in (401, 403)
    assert Video.objects.get(pk=video.pk).status == "PROCESSING"


@pytest.mark.parametrize("attempt", range(3))
def test_a_cancel_racing_with_completion_ends_in_exactly_one_terminal_state(alice, attempt):
    video = processing_video(alice)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def complete() -> None:
        start.wait()
        outcomes["complete"] = videos.complete_video(
            video.pk, f"hls/{video.pk}/1/master.m3u8", 2, worker_id="w1")
        connections.close_all()

    def cancel_it() -> None:
        start.wait()
        outcomes["cancel"] = videos.cancel_video(video.pk, tenant_id=alice.tenant.pk)
        connections.close_all()

    threads = [threading.Thread(target=complete), threading.Thread(target=cancel_it)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = Video.objects.get(pk=video.pk)
    completed, cancelled = outcomes["complete"][0], outcomes["cancel"] == "ok"
    assert completed != cancelled  # exactly one of them won
    assert final.status == ("READY" if completed else "CANCELLED")
    assert stored_snapshot(video.pk)["status"] == final.status
    assert stored_snapshot(video.pk)["version"] == final.version


def test_cancelling_a_running_sheet_stops_it_and_stores_nothing(alice):
    job_id = processing_job(alice)
    response = cancel(alice, f"/api/ai/jobs/{job_id}/")
    assert (response.status_code, response.json()["status"]) == (202, "CANCELLED")
    # The worker's next step report raises: its run ends without a result or a report.
    with pytest.raises(CancelRequested):
        ai.ai_job_report_progress(job_id=job_id, percent=60, step_index=3, step_total=5)
    assert ai.ai_job_complete(job_id=job_id, result={"x": 1}, worker_id="w1")[0] is False
    job = row(job_id)
    assert (job.status, job.result, job.report.name) == ("CANCELLED", None, "")
    assert poll_job(alice, job_id).json()["status"] == "CANCELLED"


def test_a_cancelled_sheet_stops_between_rows(alice, settings):
    settings.JOBBOX = {**getattr(settings, "JOBBOX", {}), "CANCEL_CHECK_INTERVAL_SECONDS": 0}
    job_id = new_job(alice)
    rows = [(number, (f"student {number}", 50)) for number in range(2, 202)]
    reports: list[float] = []

    def report_step(step: int, percent: float) -> None:
        reports.append(percent)
        if percent >= 50:
            request_cancel(AI_KIND, job_id)  # someone presses Cancel half way through

    context = JobContext(job_id=job_id, payload={}, open_upload=lambda: None,
                         report_step=report_step, check_cancel=CancelWatch(AI_KIND, job_id).check)
    with pytest.raises(CancelRequested):
        validate_rows(["Math"], rows, context)
    assert 50 <= max(reports) < 100  # stopped on the row after the request, not at the end


# --- Retry --------------------------------------------------------------------------------

def test_a_failed_video_retried_is_its_second_attempt_with_the_first_reason_kept(alice):
    video = processing_video(alice)
    videos.fail_video(video.pk, "ffmpeg could not read it", worker_id="w1")
    response = retry(alice, f"/api/videos/{video.pk}/")
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["attempt"], body["encoding_progress"]) == ("UPLOADED", 2, None)
    assert body["previous_attempts"] == [
        {"attempt": 1, "status": "FAILED", "reason": "ffmpeg could not read it"}]
    assert videos.mark_processing(video.pk, worker_id="w2")
    videos.complete_video(video.pk, f"hls/{video.pk}/2/master.m3u8", 2, worker_id="w2")
    done = poll(alice, video.pk).json()
    assert (done["status"], done["attempt"]) == ("READY", 2)


def test_a_cancelled_sheet_retried_runs_again_without_the_old_cancel(alice):
    job_id = processing_job(alice)
    cancel(alice, f"/api/ai/jobs/{job_id}/")
    response = retry(alice, f"/api/ai/jobs/{job_id}/")
    assert (response.status_code, response.json()["status"], response.json()["attempt"]) == (
        202, "PENDING", 2)
    assert not cancel_requested(AI_KIND, job_id)
    assert ai.ai_job_start(job_id=job_id, worker_id="w2") == "ok"
    ai.ai_job_report_progress(job_id=job_id, percent=10, step_index=1, step_total=5)  # no raise
    assert ai.ai_job_complete(job_id=job_id, result={"ok": True}, worker_id="w2")[0]
    body = poll_job(alice, job_id).json()
    assert (body["status"], body["attempt"]) == ("DONE", 2)
    assert body["previous_attempts"] == [{"attempt": 1, "status": "CANCELLED", "reason": None}]


def test_retry_of_a_running_or_done_job_is_409_and_of_another_tenants_404(alice, bob):
    running = processing_video(alice)
    response = retry(alice, f"/api/videos/{running.pk}/")
    assert (response.status_code, response.json()["code"]) == (409, "not_retryable")
    videos.fail_video(running.pk, "broken", worker_id="w1")
    assert retry(bob, f"/api/videos/{running.pk}/").status_code == 404
    assert Video.objects.get(pk=running.pk).status == "FAILED"


def test_retries_stop_at_the_attempt_limit(alice):
    video = processing_video(alice)
    Video.objects.filter(pk=video.pk).update(attempt=10)
    videos.fail_video(video.pk, "broken", worker_id="w1")
    response = retry(alice, f"/api/videos/{video.pk}/")
    assert (response.status_code, response.json()["code"]) == (409, "retry_limit")


def test_a_retried_run_gets_the_reapers_full_attempt_limit_again(alice, settings):
    settings.VIDEO_MAX_ATTEMPTS = 2
    video = processing_video(alice)  # start 1 (of run 1)
    videos.fail_video(video.pk, "broken", worker_id="w1")
    retry(alice, f"/api/videos/{video.pk}/")
    assert videos.mark_processing(video.pk, worker_id="w2", lease_seconds=0)  # start 2
    result = reaper.reap_expired_leases()
    # Two starts in all, but one of this run: re-queued, not FAILED for the first run's start.
    assert (result.requeued, result.failed) == ([video.pk], [])


# --- The log ------------------------------------------------------------------------------

def test_a_running_jobs_log_is_served_without_sql_and_kept_on_its_row_when_it_ends(
        alice, bob, django_assert_num_queries):
    video = processing_video(alice)
    append_log("video", str(video.pk), "step 2/4: transcode 90p", "warning: no audio")
    path = f"/api/videos/{video.pk}/log/"
    alice.client().get(path)  # fills the principal cache
    with django_assert_num_queries(0):
        running = alice.client().get(path)
    assert running.status_code == 200
    assert running.json() == {"status": "PROCESSING",
                              "lines": ["step 2/4: transcode 90p", "warning: no audio"]}
    assert bob.client().get(path).status_code == 404
    videos.fail_video(video.pk, "broken", worker_id="w1")
    kept = Video.objects.get(pk=video.pk).log
    assert kept[:2] == ["step 2/4: transcode 90p", "warning: no audio"]
    assert kept[-1] == "failed: broken"
    ended = alice.client().get(path).json()
    assert ended == {"status": "FAILED", "lines": kept}
    assert bob.client().get(path).status_code == 404


def test_a_sheets_log_names_its_steps_and_is_kept_when_it_is_done(alice, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    sheet = sheet_bytes([["Student", "Math"], ["Kim", 90], ["Lee", 80]])
    job_id = submit(alice, sheet).json()["job_id"]
    assert ai.run_ai_job(job_id=job_id, worker_id="w1") == "done"
    lines = alice.client().get(f"/api/ai/jobs/{job_id}/log/").json()["lines"]
    assert lines == ["attempt 1: started by w1", "step 1/5: read sheet",
                     "step 2/5: validate rows", "step 3/5: totals and ranks",
                     "step 4/5: subject statistics", "step 5/5: write report", "done"]
    assert row(job_id).log == lines


def test_the_log_keeps_the_newest_lines_within_its_line_and_byte_bounds(alice, settings):
    settings.JOBBOX = {**getattr(settings, "JOBBOX", {}), "LOG_MAX_LINES": 300,
                       "LOG_MAX_BYTES": 10 * 1024, "LOG_LINE_MAX_BYTES": 2 * 1024}
    video = processing_video(alice)
    for number in range(500):
        append_log("video", str(video.pk), f"line {number}")
    lines = read_log("video", str(video.pk))
    assert (len(lines), lines[0], lines[-1]) == (300, "line 200", "line 499")
    append_log("video", str(video.pk), *("x" * 5000 for _ in range(10)))
    lines = read_log("video", str(video.pk))
    assert lines == ["x" * 2048] * 5  # each cut to 2 KiB; five fill the 10 KiB
    assert sum(len(line.encode()) for line in lines) <= 10 * 1024


# --- Time left ----------------------------------------------------------------------------

def test_eta_is_null_until_a_rate_is_known_then_a_number_while_running(
        alice, monkeypatch, settings):
    monkeypatch.setattr(write, "ETA_SAMPLE_MIN_MS", 0)  # every report is a sample here
    # ...and an event: reports here come milliseconds apart.
    settings.JOBBOX = {**getattr(settings, "JOBBOX", {}), "PROGRESS_EVENT_INTERVAL_SECONDS": 0}
    streaming(alice.tenant.pk, alice.user.pk)
    video = new_video(alice)
    videos.mark_processing(video.pk, worker_id="w1")
    report_progress("video", str(video.pk), percent=10)
    assert poll(alice, video.pk).json()["eta_seconds"] is None  # one sample: no rate yet
    body = {}
    for percent in range(11, 60):  # reports a few ms apart: a rate appears
        report_progress("video", str(video.pk), percent=percent)
        body = poll(alice, video.pk).json()
        if body["eta_seconds"] is not None:
            break
    assert isinstance(body["eta_seconds"], int) and body["eta_seconds"] >= 0
    box = alice.client().get("/api/jobbox/").json()
    entry = next(job for job in box["jobs"] if job["id"] == str(video.pk))
    assert entry["job"]["eta_seconds"] is not None
    # The stream's events carry it too: the owner's history holds the progress events.
    history = outside_redis().xrange(
        keys.owner_events_key(str(alice.tenant.pk), str(alice.user.pk)))
    events = asyncio.run(resolve_entries(history, tenant=str(alice.tenant.pk),
                                         owner=str(alice.user.pk)))
    progressed = [event.as_json()["job"] for event in events
                  if event.as_json()["job"]["status"] == "PROCESSING"]
    assert any(job["eta_seconds"] is not None for job in progressed)
    videos.complete_video(video.pk, f"hls/{video.pk}/1/master.m3u8", 2, worker_id="w1")
    assert poll(alice, video.pk).json()["eta_seconds"] is None
