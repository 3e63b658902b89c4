"""Upload a score sheet in the page, watch the AI job run on a real worker without a reload,
and read its result as tables with the report's download link.

Needs the AI jobs work (`academy.ai.tasks`, `POST /api/ai/jobs/` with job_type
`excel.grade_report`, the report at the result's `report_url`).
"""

import io
from urllib.parse import urljoin

import openpyxl
import pytest

import academy.ai.tasks  # noqa: F401 - the AI job task the worker runs
from tests.asgi_server import serve_page_with_worker
from tests.browser import browsers, screenshot, sign_in

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
]

# Room for a worker on a busy 2-core machine to grade a tiny sheet (not a speed test).
JOB_WAIT_MS = 120_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def score_sheet() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Scores"
    for values in (["Student", "Math", "English"], ["김민준", 90, 80], ["이서연", 70, 95]):
        sheet.append(values)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def ai_service(tmp_path, settings, monkeypatch, transactional_db):
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path / "media"))
    settings.MEDIA_ROOT = str(tmp_path / "media")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop, see browser
    with serve_page_with_worker(str(tmp_path / "media")) as base:
        yield base


def test_upload_a_score_sheet_and_read_its_result_and_report(ai_service, alice):
    with browsers() as open_browser:
        page = sign_in(open_browser(), ai_service, alice.user.username,
                       f"pw-{alice.tenant.slug}")
        page.wait_for_selector("#connection[data-mode=live]")
        page.set_input_files("#sheet-form input[name=file]", files=[
            {"name": "scores.xlsx", "mimeType": XLSX, "buffer": score_sheet()}])
        page.click("#sheet-form button[type=submit]")
        page.locator("#sheet-form .messages .ok").wait_for()

        row = page.locator("li.job[data-kind=ai_job]")
        row.and_(page.locator("[data-status=DONE]")).wait_for(timeout=JOB_WAIT_MS)
        row.locator("svg.chart").wait_for()
        screenshot(page, "report-ko")
        assert row.locator(".status").inner_text() == "완료"
        assert row.locator(".title").inner_text() == "scores.xlsx"
        assert row.locator(".percent").inner_text() == "100%"
        # The student first, the subjects in the sheet's order, then total, average, rank.
        assert row.locator("table.students thead th").all_inner_texts() == [
            "학생", "Math", "English", "총점", "평균", "석차"]
        assert row.locator("table.students tbody tr").first.locator(
            "th, td").all_inner_texts() == ["김민준", "90", "80", "170", "85.00", "1"]
        assert row.locator("svg.chart g.subject").count() == 2
        assert row.locator(".pager").is_hidden()  # two students: one page
        assert row.locator("details.bad-rows").count() == 0
        link = row.locator(".actions a.download")
        assert link.inner_text() == "보고서 내려받기"
        report = page.request.get(urljoin(page.url, link.get_attribute("href")))
        assert report.status == 200
        assert report.body()[:2] == b"PK"  # an .xlsx is a zip file
