"""AI jobs recover as videos do: a lost queue send is sent again, a worker that died mid-run
is found by its lease running out and its job re-queued (or FAILED after its attempts), and a
live worker's heartbeat keeps its job. No job stays PENDING or PROCESSING forever.

Real Celery worker processes on the test database and Redis; a job reads its sheet from a
named pipe, so it is surely mid-run while the test acts (tests/e2e/test_ai_worker.py).
"""

import errno
import io
import os
import signal
from pathlib import Path

import pytest
from django.conf import settings

from academy.ai import reaper, runner, services, storage
from academy.ai.tasks import REAP_TASK
from academy.celery import app as celery_app
from process_tools import wait_until
from tests.ai_helpers import poll, row, sheet_bytes
from tests.e2e.test_ai_worker import SHEET, wait_until_finished, worker_children
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

# Short leases for the worker processes these tests start (their environment).
SHORT_LEASE_SECONDS = 2
# Long enough that a renewal every third of it survives a loaded shared machine's pauses.
HEARTBEAT_LEASE_SECONDS = 6
# Bounds how long a broken test waits; nothing is timed against it.
WAIT_SECONDS = 60


def stored_job(member, job_id: str, *, queue: bool) -> str:
    name = storage.save_upload(tenant_id=member.tenant.pk, job_id=job_id,
                               content=io.BytesIO(sheet_bytes(SHEET)))
    return services.ai_job_create(tenant_id=member.tenant.pk, created_by_id=member.user.pk,
                                  job_type="excel.grade_report", payload={},
                                  upload_name=name, job_id=job_id, queue=queue).job_id


def piped_job(member, job_id: str) -> Path:
    """A job whose sheet is a named pipe: a run blocks reading it until the test writes."""
    name = f"ai/uploads/{member.tenant.pk}/{job_id}.xlsx"
    fifo = Path(settings.MEDIA_ROOT) / name
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    services.ai_job_create(tenant_id=member.tenant.pk, created_by_id=member.user.pk,
                           job_type="excel.grade_report", payload={}, upload_name=name,
                           job_id=job_id)
    return fifo


def open_if_read(fifo: Path) -> int | None:
    """The pipe's write end once a run holds it open for reading; None before."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO  # no reader yet
        return None


def feed_when_read(fifo: Path) -> None:
    """Write the sheet into the pipe once a run opens it for reading."""
    writer = wait_until(lambda: open_if_read(fifo), timeout_seconds=WAIT_SECONDS)
    assert writer is not None, "no run opened the sheet"
    os.set_blocking(writer, True)
    with os.fdopen(writer, "wb") as pipe:
        pipe.write(sheet_bytes(SHEET))


def wait_for_status(member, job_id: str, status: str) -> None:
    assert wait_until(lambda: poll(member, job_id).json()["status"] == status,
                      timeout_seconds=WAIT_SECONDS), f"{job_id} never {status}"


def test_a_lost_send_is_sent_again_and_the_job_runs(worker, alice, monkeypatch, settings):
    monkeypatch.setattr(runner, "send_on_commit", lambda *args, **kwargs: None)
    lost = stored_job(alice, "lost-send-" + "l" * 22, queue=True)  # its send never left
    monkeypatch.undo()
    marker = stored_job(alice, "marker-" + "m" * 25, queue=True)
    # The solo worker takes messages in order: the marker done, the lost job was never sent.
    assert wait_until_finished(alice, marker)["status"] == "DONE"
    assert row(lost).status == "PENDING" and row(lost).queued_at is not None
    settings.AI_RESEND_AFTER_SECONDS = 0
    assert reaper.reap_ai_jobs().resent == [lost]
    body = wait_until_finished(alice, lost)
    assert body["status"] == "DONE"
    assert row(lost).attempts == 1


def test_a_killed_worker_is_found_by_its_lease_and_the_job_runs_again(alice, monkeypatch):
    """The whole worker killed (not just its pool process): the broker keeps its message
    unacknowledged for the visibility timeout (an hour), so only the lease can tell."""
    monkeypatch.setenv("AI_LEASE_SECONDS", str(SHORT_LEASE_SECONDS))
    workers = [start_worker("--pool", "prefork", "--concurrency", "1") for _ in range(2)]
    job_id = "killed-worker-" + "k" * 18
    fifo = piped_job(alice, job_id)
    try:
        wait_for_status(alice, job_id, "PROCESSING")
        holder_pid = int(row(job_id).leased_by.rsplit(":", 1)[1])  # the pool process
        [holder] = [w for w in workers if holder_pid in worker_children(w)]
        os.kill(holder.pid, signal.SIGKILL)
        os.kill(holder_pid, signal.SIGKILL)
        holder.wait()
        assert wait_until(lambda: job_id in reaper.reap_ai_jobs().requeued,
                          timeout_seconds=WAIT_SECONDS, interval_seconds=0.5)
        requeued = row(job_id)
        assert (requeued.status, requeued.leased_by, requeued.attempts) == ("PENDING", "", 1)
        feed_when_read(fifo)  # the other worker runs it again
        body = wait_until_finished(alice, job_id)
    finally:
        for process in workers:
            stop_worker(process)
        fifo.unlink(missing_ok=True)
    assert body["status"] == "DONE"
    done = row(job_id)
    # created v1, started v2, re-queued by the reaper v3, started again v4, DONE v5.
    assert (done.status, done.attempts, done.version) == ("DONE", 2, 5)


def test_a_live_workers_heartbeat_keeps_its_job(alice, monkeypatch):
    monkeypatch.setenv("AI_LEASE_SECONDS", str(HEARTBEAT_LEASE_SECONDS))
    job_id = "heartbeat-" + "h" * 22
    fifo = piped_job(alice, job_id)
    # Prefork: the main process answers the start-up ping while the job blocks its child.
    process = start_worker("--pool", "prefork", "--concurrency", "1")
    try:
        wait_for_status(alice, job_id, "PROCESSING")
        leases = {row(job_id).leased_until}

        def renewed_twice() -> bool:
            leases.add(row(job_id).leased_until)
            return len(leases) >= 3

        # Two renewals seen: the lease moved on while the run was blocked mid-job.
        assert wait_until(renewed_twice, timeout_seconds=WAIT_SECONDS, interval_seconds=0.2)
        assert reaper.reap_ai_jobs().requeued == []
        feed_when_read(fifo)
        body = wait_until_finished(alice, job_id)
    finally:
        stop_worker(process)
        fifo.unlink(missing_ok=True)
    assert body["status"] == "DONE"
    assert (row(job_id).attempts, row(job_id).version) == (1, 3)


def test_a_job_out_of_attempts_ends_failed(alice, settings):
    settings.AI_MAX_ATTEMPTS = 1
    job_id = stored_job(alice, "no-more-tries-" + "n" * 18, queue=False)
    assert services.ai_job_start(job_id=job_id, worker_id="gone@host:1", lease_seconds=0) == "ok"
    result = reaper.reap_ai_jobs()
    assert result.failed == [job_id]
    body = poll(alice, job_id).json()
    assert (body["status"], body["error_message"]) == ("FAILED", services.STOPPED_ANSWERING_MESSAGE)
    assert reaper.reap_ai_jobs().failed == []  # ended once


def test_a_late_result_of_a_run_that_lost_its_lease_is_refused(alice):
    job_id = stored_job(alice, "late-result-" + "r" * 20, queue=False)
    assert services.ai_job_start(job_id=job_id, worker_id="slow@host:1", lease_seconds=0) == "ok"
    assert reaper.reap_ai_jobs().requeued == [job_id]
    assert services.ai_job_start(job_id=job_id, worker_id="next@host:2") == "ok"
    assert services.ai_job_start(job_id=job_id, worker_id="dup@other:3") == "leased"
    assert services.ai_job_complete(job_id=job_id, result={"n": 1},
                                    worker_id="slow@host:1") == (False, "lease_lost")
    assert services.ai_job_complete(job_id=job_id, result={"n": 2},
                                    worker_id="next@host:2") == (True, "ok")
    assert row(job_id).result == {"n": 2}


def test_beat_runs_the_reaper():
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == REAP_TASK]
    assert entries and entries[0]["schedule"] == settings.AI_REAP_INTERVAL_SECONDS
    assert REAP_TASK in celery_app.tasks
