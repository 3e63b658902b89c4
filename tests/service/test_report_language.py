"""The grade report's workbook is written in the language of the person who asked for it:
their choice on the page (the language cookie), else their Accept-Language, else Korean."""

import io

import openpyxl
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.ai import services
from tests.ai_helpers import row, sheet_bytes, submit

pytestmark = pytest.mark.django_db(transaction=True)

SHEET = [["Student", "Math"], ["Kim", 90], ["Lee", 83.5], [None, 70]]


def report_of(member, job_id: str) -> openpyxl.Workbook:
    assert services.run_ai_job(job_id=job_id, worker_id="in-process") == "done"
    download = member.client().get(f"/api/ai/jobs/{job_id}/report/")
    return openpyxl.load_workbook(io.BytesIO(b"".join(download.streaming_content)))


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def test_accept_language_english_gets_an_english_report(alice):
    job_id = submit(alice, sheet_bytes(SHEET), language="en-US,en;q=0.9").json()["job_id"]
    assert row(job_id).payload["language"] == "en"
    book = report_of(alice, job_id)
    assert book.sheetnames == ["Students", "Subjects", "Bad rows"]
    assert [cell.value for cell in book["Students"][1]] == [
        "Student", "Math", "Total", "Average", "Rank"]


def test_the_persons_choice_wins_over_accept_language_and_korean_is_the_default(alice):
    client = alice.client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    chosen = client.post("/api/ai/jobs/", {
        "file": SimpleUploadedFile("scores.xlsx", sheet_bytes(SHEET)),
        "job_type": "excel.grade_report"}, format="multipart",
        HTTP_ACCEPT_LANGUAGE="en").json()["job_id"]
    unsaid = submit(alice, sheet_bytes(SHEET)).json()["job_id"]  # no cookie, no header
    for job_id in (chosen, unsaid):
        book = report_of(alice, job_id)
        assert book.sheetnames == ["학생별 성적", "과목별 통계", "제외된 행"]
        students = book["학생별 성적"]
        assert students["A1"].value == "학생"
        notes = [r[0] for r in book["과목별 통계"].iter_rows(values_only=True) if r and r[0]]
        assert any("STDEV.P" in str(note) and "표준편차" in str(note) for note in notes)
