"""A score sheet cancelled while a real worker process grades it: CANCELLED in the poll at once,
the worker stops (no result, no report stored), its log says where, and another tenant's
cancel is the same 404 as a missing job's."""

import time

import pytest

from academy.ai.models import AIJobModel
from process_tools import wait_until
from tests.ai_helpers import sheet_bytes, submit
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

SUBJECTS = ["Korean", "Math", "English", "Science", "History", "Music", "Art", "PE"]
# The most rows a sheet may have: reading them alone keeps a worker busy for a second or
# more, long enough to be cancelled while it runs.
ROWS = 10_000
JOB_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20


def test_a_score_sheet_cancelled_while_processing_stops_and_stores_nothing(
        alice, bob, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path)
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path))
    sheet = sheet_bytes([["Student", *SUBJECTS],
                         *([f"student {n}", *[n % 101] * len(SUBJECTS)] for n in range(ROWS))])
    worker = start_worker("--pool", "solo")
    try:
        job_id = submit(alice, sheet).json()["job_id"]
        client = alice.client()
        assert wait_until(lambda: client.get(f"/api/ai/jobs/{job_id}/").json()["status"]
                          == "PROCESSING", timeout_seconds=JOB_TIMEOUT_SECONDS,
                          interval_seconds=0.01)
        assert bob.client().post(f"/api/ai/jobs/{job_id}/cancel/").status_code == 404
        asked = time.monotonic()
        response = client.post(f"/api/ai/jobs/{job_id}/cancel/")
        assert (response.status_code, response.json()["status"]) == (202, "CANCELLED")
        assert client.get(f"/api/ai/jobs/{job_id}/").json()["status"] == "CANCELLED"

        def stopped() -> list[str] | None:
            lines = client.get(f"/api/ai/jobs/{job_id}/log/").json()["lines"]
            return lines if "stopped between rows" in lines else None

        log = wait_until(stopped, timeout_seconds=STOP_TIMEOUT_SECONDS)
        print(f"the worker stopped {time.monotonic() - asked:.2f} s after the cancel")
        assert log, "the worker did not say it stopped"
        assert "done" not in log
        job = AIJobModel.objects.get(job_id=job_id)
        assert (job.status, job.result, job.report.name) == ("CANCELLED", None, "")
        assert not (tmp_path / "ai" / "reports").exists()  # no report was written
        assert client.post(f"/api/ai/jobs/{job_id}/cancel/").status_code == 202  # a no-op
    finally:
        stop_worker(worker)
