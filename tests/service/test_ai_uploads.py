"""POST /api/ai/jobs/: each kind of bad upload is a clear 400 with nothing stored or queued;
a good one is stored under its tenant, queued after commit and answered 201."""

import io
import zipfile
from pathlib import Path

import pytest

from academy.ai import services
from academy.ai.models import AIJobModel
from tests.ai_helpers import poll, queued_messages, sheet_bytes, submit
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_ROWS = [["Student", "Korean", "Math"], ["Kim", 90, 80], ["Lee", 70, 60], ["Park", 50, 40]]


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def zip_bytes(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def assert_nothing_stored_or_queued(media: Path) -> None:
    assert [p for p in media.rglob("*") if p.is_file()] == []
    assert AIJobModel.objects.count() == 0
    assert queued_messages() == 0
    assert list(outside_redis().scan_iter("*job:*")) == []


BAD_UPLOADS = {
    "text_named_xlsx": (b"name,score\nKim,90\n", "not_xlsx"),
    "empty": (b"", "not_xlsx"),
    "png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not_xlsx"),
    "legacy_xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504, "not_xlsx"),
    "zip_not_workbook": (zip_bytes({"hello.txt": b"hi"}), "not_xlsx"),
    "zip_with_broken_parts": (
        zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"not xml"}),
        "not_xlsx"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_a_file_that_is_not_a_real_xlsx_is_refused_whatever_its_name(alice, media, name):
    content, code = BAD_UPLOADS[name]
    response = submit(alice, content, name="scores.xlsx")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert "Traceback" not in response.content.decode()
    assert_nothing_stored_or_queued(media)


def test_an_unknown_job_type_is_refused_and_names_the_known_ones(alice, media):
    response = submit(alice, sheet_bytes(GOOD_ROWS), job_type="excel.horoscope")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_job_type"
    assert "excel.grade_report" in response.json()["detail"]
    assert_nothing_stored_or_queued(media)


def test_a_file_over_the_size_limit_is_refused(alice, media, settings):
    content = sheet_bytes(GOOD_ROWS)
    settings.AI_UPLOAD_MAX_BYTES = len(content) - 1
    response = submit(alice, content)
    assert (response.status_code, response.json()["code"]) == (400, "file_too_large")
    assert_nothing_stored_or_queued(media)


def test_a_request_body_far_over_the_limit_is_refused_before_it_is_parsed(alice, media, settings):
    settings.AI_UPLOAD_MAX_BYTES = 1024
    response = submit(alice, b"PK" + b"\0" * 200_000)
    # academy.upload_guard answers from the declared length, before the body is read.
    assert (response.status_code, response.json()["code"]) == (413, "file_too_large")
    assert_nothing_stored_or_queued(media)


def test_a_workbook_that_expands_past_the_limit_is_refused_unread(alice, media, settings):
    settings.AI_UPLOAD_MAX_UNCOMPRESSED_BYTES = 1000
    response = submit(alice, sheet_bytes(GOOD_ROWS))
    assert (response.status_code, response.json()["code"]) == (400, "file_too_large")
    assert_nothing_stored_or_queued(media)


def run_in_process(job_id: str) -> AIJobModel:
    services.run_ai_job(job_id=job_id, worker_id="in-process")
    return AIJobModel.objects.get(job_id=job_id)


def test_a_sheet_over_the_row_limit_fails_on_the_worker_saying_why(alice, media, settings):
    settings.AI_MAX_ROWS = 2
    response = submit(alice, sheet_bytes(GOOD_ROWS))  # 3 data rows: rows are not read here
    assert response.status_code == 201
    job = run_in_process(response.json()["job_id"])
    assert (job.status, job.error_message) == ("FAILED", "The sheet has more than 2 data rows.")


def test_a_sheet_whose_rows_sit_far_apart_fails_unread(alice, media, settings):
    import openpyxl

    settings.AI_MAX_ROWS = 10
    workbook = openpyxl.Workbook()
    workbook.active.append(["Student", "Math"])
    workbook.active.cell(row=50_000, column=1, value="Far away")
    out = io.BytesIO()
    workbook.save(out)
    response = submit(alice, out.getvalue())  # two data rows, 50,000 rows apart
    assert response.status_code == 201
    job = run_in_process(response.json()["job_id"])
    assert (job.status, job.error_message) == ("FAILED", "The sheet spans more than 1020 rows.")


def test_a_missing_file_or_job_type_is_refused(alice, media):
    response = alice.client().post("/api/ai/jobs/", {"job_type": "excel.grade_report"},
                                   format="multipart")
    assert (response.status_code, response.json()["code"]) == (400, "missing_field")
    response = submit(alice, sheet_bytes(GOOD_ROWS), job_type="")
    assert (response.status_code, response.json()["code"]) == (400, "missing_field")
    assert_nothing_stored_or_queued(media)


def test_an_unauthenticated_upload_is_refused(alice, media):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/ai/jobs/", {"job_type": "excel.grade_report"},
                                format="multipart")
    assert response.status_code == 401
    assert_nothing_stored_or_queued(media)


def test_a_good_sheet_at_the_row_limit_is_stored_queued_and_answered_201(alice, media, settings):
    settings.AI_MAX_ROWS = 3
    content = sheet_bytes(GOOD_ROWS)
    response = submit(alice, content, name="../../evil name.xlsx")
    assert response.status_code == 201
    body = response.json()
    assert body == {"job_id": body["job_id"], "job_type": "excel.grade_report",
                    "status": "PENDING", "progress": None, "error_message": None,
                    "result": None, "file_name": "evil name.xlsx",
                    "created_at": body["created_at"], "updated_at": body["updated_at"],
                    "attempt": 1, "previous_attempts": [], "eta_seconds": None}
    job = AIJobModel.objects.get(job_id=body["job_id"])
    assert (job.tenant_id, job.created_by_id) == (alice.tenant.pk, alice.user.pk)
    # The name the person sees on the card: no folder, and never used in a path.
    # ...and its report is written in the asker's language (no choice, no header: Korean).
    assert job.payload == {"file_name": "evil name.xlsx", "language": "ko"}
    stored = [p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()]
    assert stored == [f"ai/uploads/{alice.tenant.pk}/{job.job_id}.xlsx"]  # not the client's name
    assert (media / stored[0]).read_bytes() == content
    assert queued_messages() == 1
    assert poll(alice, job.job_id).content == response.content
