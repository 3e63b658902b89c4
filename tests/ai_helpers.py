"""Helpers of the AI job tests: score sheets built with openpyxl, jobs in each state, polls."""

import io
from typing import Any

import openpyxl
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.ai import services
from academy.ai.models import AIJobModel
from academy.celery import app as celery_app
from jobbox import keys
from tests.redis_peek import outside_redis, snapshot_document

GRADE_REPORT = "excel.grade_report"


def sheet_bytes(rows: list[list[Any]], title: str = "Scores") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def submit(member: Any, content: bytes, *, job_type: str = GRADE_REPORT,
           name: str = "scores.xlsx", language: str | None = None) -> Any:
    """`language`: the asker's Accept-Language (the report is written in it)."""
    headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
    return member.client().post(
        "/api/ai/jobs/",
        {"file": SimpleUploadedFile(name, content), "job_type": job_type},
        format="multipart", **headers,
    )


def new_job(member: Any, *, job_type: str = GRADE_REPORT) -> str:
    """A PENDING job created through the service (not queued: these tests drive it)."""
    job = services.ai_job_create(
        tenant_id=member.tenant.pk, created_by_id=member.user.pk, job_type=job_type,
        payload={"sheet": "Scores", "data_rows": 3}, queue=False,
    )
    return job.job_id


def processing_job(member: Any) -> str:
    job_id = new_job(member)
    assert services.ai_job_start(job_id=job_id, worker_id="w1") == "ok"
    services.ai_job_report_progress(job_id=job_id, percent=40, step_index=2, step_total=5,
                                    step_name="validate rows", step_percent=50)
    return job_id


def done_job(member: Any, result: Any) -> str:
    job_id = processing_job(member)
    assert services.ai_job_complete(job_id=job_id, result=result) == (True, "ok")
    return job_id


def poll(member: Any, job_id: str) -> Any:
    return member.client().get(f"/api/ai/jobs/{job_id}/")


def status_key(job_id: str) -> str:
    return keys.status_key("job", job_id)


def stored_snapshot(job_id: str) -> dict[str, Any] | None:
    raw = outside_redis().get(status_key(job_id))
    return snapshot_document(raw)


def row(job_id: str) -> AIJobModel:
    return AIJobModel.objects.get(job_id=job_id)


def queued_messages() -> int:
    """Messages waiting in the broker's default queue (no worker runs in these tests)."""
    with celery_app.connection_for_read() as connection:
        queue = celery_app.conf.task_default_queue
        return connection.default_channel.queue_declare(queue, passive=False).message_count
