"""A real Celery worker process grades a spreadsheet the test generates; its numbers, its
report, the failure hook, a dead worker's job run again, and a duplicate delivery."""

import errno
import io
import os
import signal
from pathlib import Path

import openpyxl
import pytest

from academy.ai import services, storage
from academy.ai.tasks import run_ai_job
from process_tools import wait_until
from tests.ai_helpers import poll, row, sheet_bytes, submit
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

# A worker on a shared 2-core machine grades a small sheet in well under a second; this only
# bounds how long a broken test waits.
JOB_TIMEOUT_SECONDS = 60

SHEET = [
    ["Student", "Korean", "Math", "English"],
    ["Kim", 90, 80, 70],            # row 2: total 240
    ["Lee", 100, 95, 85],           # row 3: total 280
    ["Park", 70, 80, 90],           # row 4: total 240, tied with Kim
    [None, 50, 50, 50],             # row 5: no name
    ["Choi", "abc", 50, 120],       # row 6: not a number, out of range
    ["Kim", 10, 10, 10],            # row 7: duplicate of row 2
    ["Jung", 60, None, 75.5],       # row 8: Math missing
    [],                             # row 9: blank, skipped
    ["Han", "88", 92, 80],          # row 10: a number typed as text counts; total 260
]


def wait_until_finished(member, job_id):
    def finished():
        body = poll(member, job_id).json()
        return body if body["status"] in ("DONE", "FAILED") else None

    body = wait_until(finished, timeout_seconds=JOB_TIMEOUT_SECONDS, interval_seconds=0.1)
    assert body, f"job {job_id} did not finish"
    return body


def open_for_writing_once_read(fifo: Path) -> int | None:
    """A write end of the pipe once a reader has it open (ENXIO until then)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO
        return None


def test_a_worker_process_grades_a_sheet_and_every_number_checks(worker, alice, bob):
    response = submit(alice, sheet_bytes(SHEET), language="en")  # its report in English
    assert response.status_code == 201
    job_id = response.json()["job_id"]
    body = wait_until_finished(alice, job_id)
    assert (body["status"], body["error_message"], body["progress"]) == ("DONE", None, None)
    result = body["result"]

    assert result["subjects"] == ["Korean", "Math", "English"]
    assert result["summary"] == {"rows": 8, "valid_rows": 4, "bad_rows": 4}
    assert [(s["rank"], s["student"], s["row"], s["total"], s["average"])
            for s in result["students"]] == [
        (1, "Lee", 3, 280, 93.33),
        (2, "Han", 10, 260, 86.67),
        (3, "Kim", 2, 240, 80),
        (3, "Park", 4, 240, 80),  # a tie shares the rank
    ]
    assert result["students"][1]["scores"] == {"Korean": 88, "Math": 92, "English": 80}
    assert result["subject_stats"] == [
        {"subject": "Korean", "count": 4, "mean": 87, "median": 89, "min": 70, "max": 100,
         "stdev": 10.82},
        {"subject": "Math", "count": 4, "mean": 86.75, "median": 86, "min": 80, "max": 95,
         "stdev": 6.83},
        {"subject": "English", "count": 4, "mean": 81.25, "median": 82.5, "min": 70,
         "max": 90, "stdev": 7.4},
    ]
    assert result["bad_rows"] == [
        {"row": 5, "reason": "no student name"},
        {"row": 6, "reason": "score for 'Korean' is not a number ('abc'); "
                             "score for 'English' is 120, outside 0 to 100"},
        {"row": 7, "reason": "student 'Kim' is already on row 2"},
        {"row": 8, "reason": "no score for 'Math'"},
    ]

    # The report: downloadable by its tenant, the same 404 for anyone else.
    assert result["report_url"] == f"/api/ai/jobs/{job_id}/report/"
    download = alice.client().get(result["report_url"])
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    report = openpyxl.load_workbook(io.BytesIO(b"".join(download.streaming_content)))
    students = [list(r) for r in report["Students"].iter_rows(values_only=True)]
    # The student first, the subjects in the sheet's order, then total, average and rank.
    assert students[0] == ["Student", "Korean", "Math", "English", "Total", "Average", "Rank"]
    assert students[1:] == [["Lee", 100, 95, 85, 280, 93.33, 1], ["Han", 88, 92, 80, 260, 86.67, 2],
                            ["Kim", 90, 80, 70, 240, 80, 3], ["Park", 70, 80, 90, 240, 80, 3]]
    subjects = list(report["Subjects"].iter_rows(values_only=True))
    assert subjects[1] == ("Korean", 4, 87, 89, 70, 100, 10.82)
    assert [r[0] for r in report["Bad rows"].iter_rows(values_only=True)] == [
        "Row", 5, 6, 7, 8]
    assert subjects[len(result["subject_stats"]) + 1] == (None,) * 7  # then the notes
    assert bob.client().get(result["report_url"]).status_code == 404
    assert alice.client().get(f"/api/ai/jobs/{'Z' * 32}/report/").status_code == 404


def test_a_sheet_without_one_valid_row_ends_failed_with_its_reasons(worker, alice):
    job_id = submit(alice, sheet_bytes([["Student", "Math"], ["Kim", "x"], [None, 3]])).json()[
        "job_id"]
    body = wait_until_finished(alice, job_id)
    assert body["status"] == "FAILED"
    assert body["error_message"] == ("No valid student rows (2 bad). row 2: score for 'Math' "
                                     "is not a number ('x'); row 3: no student name")
    assert alice.client().get(f"/api/ai/jobs/{job_id}/report/").status_code == 404


def test_an_unexpected_error_in_the_worker_runs_the_failure_service(worker, alice):
    # The stored sheet is gone: the task raises, and its failure hook ends the job FAILED
    # with a message for people, never the exception's text.
    job = services.ai_job_create(tenant_id=alice.tenant.pk, created_by_id=alice.user.pk,
                                 job_type="excel.grade_report", payload={},
                                 upload_name="ai/uploads/missing.xlsx")
    body = wait_until_finished(alice, job.job_id)
    assert body["status"] == "FAILED"
    assert body["error_message"] == services.UNEXPECTED_FAILURE_MESSAGE
    assert "missing" not in poll(alice, job.job_id).content.decode()


def stored_job(member, rows, job_id):
    name = storage.save_upload(tenant_id=member.tenant.pk, job_id=job_id,
                               content=io.BytesIO(sheet_bytes(rows)))
    return services.ai_job_create(tenant_id=member.tenant.pk, created_by_id=member.user.pk,
                                  job_type="excel.grade_report", payload={},
                                  upload_name=name, job_id=job_id, queue=False).job_id


def test_a_started_job_delivered_again_runs_again_and_a_duplicate_changes_nothing(
        worker, alice):
    job_id = stored_job(alice, SHEET, "dead-run-" + "x" * 23)
    # A worker took it, reported progress and died before acknowledging the message; its
    # lease has run out (a live lease of another worker's would leave the run alone).
    assert services.ai_job_start(job_id=job_id, worker_id="dead@host:1", lease_seconds=0) == "ok"
    services.ai_job_report_progress(job_id=job_id, percent=30, step_index=2, step_total=5,
                                    step_name="validate rows")
    run_ai_job.delay(job_id)  # the broker's redelivery
    body = wait_until_finished(alice, job_id)
    assert body["status"] == "DONE"
    finished = row(job_id)
    assert (finished.attempts, finished.version, finished.leased_by) == (2, 5, "")

    run_ai_job.delay(job_id)  # a duplicate delivery of the same message
    run_ai_job.delay("not-a-job-" + "y" * 22)  # and one for a job that does not exist
    # The solo worker takes messages in order: once this one is done, so are those.
    marker = stored_job(alice, SHEET, "marker-" + "m" * 25)
    run_ai_job.delay(marker)
    assert wait_until_finished(alice, marker)["status"] == "DONE"
    again = row(job_id)
    assert (again.status, again.version, again.attempts) == ("DONE", 5, 2)
    assert poll(alice, job_id).json() == body


def worker_children(process):
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def test_a_job_whose_worker_process_is_killed_runs_again_and_ends_done_once(
        transactional_db, alice, settings):
    """A real kill: the pool process dies mid-job; late acknowledgement redelivers it."""
    # The job's sheet is a named pipe: the first run blocks reading it, so it is surely
    # mid-job when killed; the second run gets the sheet written into the pipe.
    job_id = "killed-run-" + "k" * 21
    name = f"ai/uploads/{alice.tenant.pk}/{job_id}.xlsx"
    fifo = Path(settings.MEDIA_ROOT) / name
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    process = start_worker("--pool", "prefork", "--concurrency", "1")
    try:
        services.ai_job_create(tenant_id=alice.tenant.pk, created_by_id=alice.user.pk,
                               job_type="excel.grade_report", payload={}, upload_name=name,
                               job_id=job_id)
        assert wait_until(lambda: poll(alice, job_id).json()["status"] == "PROCESSING",
                          timeout_seconds=JOB_TIMEOUT_SECONDS), "the job never started"
        [child] = worker_children(process)
        os.kill(child, signal.SIGKILL)
        # Until it is gone, pipe end and all.
        assert wait_until(lambda: child not in worker_children(process),
                          timeout_seconds=JOB_TIMEOUT_SECONDS), "the killed process lingers"
        # The second run opens the pipe for reading.
        writer = wait_until(lambda: open_for_writing_once_read(fifo),
                            timeout_seconds=JOB_TIMEOUT_SECONDS)
        assert writer, "the job was not delivered again"
        os.set_blocking(writer, True)
        with os.fdopen(writer, "wb") as pipe:
            pipe.write(sheet_bytes(SHEET))
        body = wait_until_finished(alice, job_id)
    finally:
        stop_worker(process)
        fifo.unlink(missing_ok=True)
    assert body["status"] == "DONE"
    assert [s["student"] for s in body["result"]["students"]] == ["Lee", "Han", "Kim", "Park"]
    job = row(job_id)
    # created v1, started v2, back to PENDING v3, started again v4, DONE v5.
    assert (job.status, job.attempts, job.version) == ("DONE", 2, 5)
