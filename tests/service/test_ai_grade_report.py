"""The grade report run in-process through the worker's service: named progress steps, and
sheets whose header makes grading impossible end FAILED with a reason a person can act on."""

import io

import pytest

from academy.ai import services, storage
from academy.ai.job_types.grade_report import GradeReport
from tests.ai_helpers import row, sheet_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def job_with_sheet(member, rows):
    job_id = services.ai_job_create(tenant_id=member.tenant.pk, created_by_id=member.user.pk,
                                     job_type="excel.grade_report", payload={},
                                     queue=False).job_id
    name = storage.save_upload(tenant_id=member.tenant.pk, job_id=job_id,
                               content=io.BytesIO(sheet_bytes(rows)))
    job = row(job_id)
    job.upload.name = name
    job.save(update_fields=["upload"])
    return job_id


def test_the_run_reports_each_named_step_in_order_up_to_100_percent(alice, monkeypatch):
    reports = []
    real = services.ai_job_report_progress

    def recording(**kwargs):
        reports.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "ai_job_report_progress", recording)
    rows = [["Student", "Math"]] + [[f"s{n}", n % 100] for n in range(200)]
    job_id = job_with_sheet(alice, rows)
    assert services.run_ai_job(job_id=job_id, worker_id="in-process") == "done"

    names = [r["step_name"] for r in reports]
    assert list(dict.fromkeys(names)) == list(GradeReport.steps)
    assert {r["step_total"] for r in reports} == {5}
    percents = [r["percent"] for r in reports]
    assert percents == sorted(percents) and percents[-1] == 100
    assert names.count("validate rows") > 10  # progress while validating, not just at the ends
    job = row(job_id)
    assert job.status == "DONE" and job.report.name.startswith(f"ai/reports/{alice.tenant.pk}/")


@pytest.mark.parametrize(("rows", "message"), [
    ([["Student", "Math", "Math"], ["Kim", 1, 2]],
     "Row 1: subject 'Math' appears more than once."),
    ([["Student", "Math", None, "English"], ["Kim", 1, 2, 3]],
     "Row 1: column C has no subject name."),
    ([["Student"], ["Kim"]],
     "Row 1 (the header) must name the student column and at least one subject column."),
    ([["Student", "Math"]], "No valid student rows (0 bad)."),
])
def test_a_sheet_that_cannot_be_graded_ends_failed_with_its_reason(alice, rows, message):
    job_id = job_with_sheet(alice, rows)
    assert services.run_ai_job(job_id=job_id, worker_id="in-process") == "failed"
    job = row(job_id)
    assert (job.status, job.error_message, job.report.name) == ("FAILED", message, "")
