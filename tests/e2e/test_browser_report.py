"""The page as teachers use it, in Debian's Chromium with Korean fonts: job cards a person can
scan (file name, times, percent, one colour per state, messages in the page's language, Play
only where there is something to play), a refused upload explained without raw codes, and a
large grade report read page by page from its endpoint. Each key screen is kept as a PNG
(tests.browser.SCREENSHOTS) and checked by what a person sees."""

import re

import pytest

from academy.ai import services as ai
from academy.ai.job_types.grade_report import StudentRow, rank_students, subject_statistics
from academy.videos import services as videos
from tests.ai_helpers import done_job, new_job, processing_job
from tests.browser import live_page, screenshot
from tests.video_helpers import new_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser,
              pytest.mark.usefixtures("on_private_redis")]

SUBJECTS = ["국어", "수학", "영어"]  # not in alphabetical order, on purpose
# CSS colours of the bar's fill (jobbox.css): one meaning per colour.
GREEN, RED, BLUE = "rgb(30, 142, 62)", "rgb(197, 34, 31)", "rgb(47, 98, 208)"


def page_of(member, server, open_browser):
    return live_page(open_browser(), server, member)


def card(page, kind, job_id):
    return page.locator(f"li.job[data-kind={kind}][data-id='{job_id}']")


def fill_colour(row):
    return row.locator(".bar .fill").evaluate("node => getComputedStyle(node).backgroundColor")


def grade_report(students: int, bad_rows: int = 0) -> dict:
    rows = [StudentRow(row=n + 2, student=f"학생 {n + 1:04d}",
                       scores={s: (n * 7 + i * 13) % 101 for i, s in enumerate(SUBJECTS)})
            for n in range(students)]
    return {
        "sheet": "성적", "subjects": SUBJECTS,
        "summary": {"rows": students + bad_rows, "valid_rows": students, "bad_rows": bad_rows},
        "students": rank_students(SUBJECTS, rows),
        "subject_stats": [subject_statistics(s, rows) for s in SUBJECTS],
        "bad_rows": [{"row": students + 2 + n, "reason": f"score for '수학' is not a number "
                      f"('결석{n}')"} for n in range(bad_rows)],
    }


def test_job_cards_show_name_times_percent_and_state_in_the_pages_language(
        server, alice, open_browser):
    running = new_video(alice, "3월 모의고사 해설")
    videos.mark_processing(running.pk, worker_id="w1")
    videos.report_video_progress(running.pk, percent=42.7, step_index=2, step_total=4,
                                 step_name="transcode 720p", step_percent=30)
    broken = new_video(alice, "깨진 파일")
    videos.mark_processing(broken.pk, worker_id="w1")
    videos.report_video_progress(broken.pk, percent=98, step_index=4, step_total=4,
                                 step_name="package")
    videos.fail_video(broken.pk, "The file is not a playable video.")
    simulated = new_video(alice, "Simulated lecture 7")
    videos.mark_processing(simulated.pk, worker_id="w1")
    videos.complete_video(simulated.pk, "", duration=600)  # READY with nothing to play
    playable = new_video(alice, "재생 가능")
    videos.mark_processing(playable.pk, worker_id="w1")
    videos.complete_video(playable.pk, f"hls/{playable.pk}/master.m3u8", duration=5)
    waiting = new_job(alice)
    sheet = processing_job(alice)  # step 2 of 5, "validate rows", 40 %
    failed = processing_job(alice)
    ai.ai_job_fail(job_id=failed, error_message="No valid student rows (2 bad). row 2: "
                   "score for 'Math' is not a number ('x'); row 3: no student name")

    page = page_of(alice, server, open_browser)
    for kind, job_id in (("video", running.pk), ("video", broken.pk), ("ai_job", failed)):
        card(page, kind, job_id).wait_for()
    shot = screenshot(page, "box-ko")

    row = card(page, "video", running.pk)
    assert row.locator(".title").inner_text() == "3월 모의고사 해설"
    assert row.locator(".percent").inner_text() == "42%"
    assert row.locator(".step").inner_text() == "단계 2/4: 720p 변환"
    assert row.locator(".times").inner_text().startswith("갱신 ")
    assert fill_colour(row) == BLUE

    row = card(page, "video", broken.pk)
    assert (row.locator(".status").inner_text(), fill_colour(row)) == ("실패", RED)
    assert row.locator(".bar").get_attribute("data-percent") == "100"  # full and red, not 98
    assert row.locator(".error").inner_text() == "재생할 수 있는 동영상이 아닙니다."
    assert row.locator(".times").inner_text().startswith("끝남 ")

    row = card(page, "video", simulated.pk)
    assert row.locator(".status").inner_text() == "완료" and fill_colour(row) == GREEN
    assert row.locator("button.play").count() == 0  # nothing to play: no Play button
    assert card(page, "video", playable.pk).locator("button.play").inner_text() == "재생"

    row = card(page, "ai_job", sheet)
    assert row.locator(".title").inner_text() == "성적표"  # no file name: its kind, once
    assert not row.locator(".kind").is_visible()
    assert row.locator(".percent").inner_text() == "40%"
    assert row.locator(".step").inner_text() == "단계 2/5: 행 검사"
    assert row.locator(".times").inner_text().startswith("시작 ")
    assert card(page, "ai_job", waiting).locator(".percent").inner_text() == "0%"
    error = card(page, "ai_job", failed).locator(".error").inner_text()
    assert error == ("올바른 학생 행이 없습니다 (잘못된 행 2개). 2행: 'Math' 점수가 숫자가 "
                     "아닙니다 ('x'); 3행: 학생 이름 없음")
    assert shot.stat().st_size > 0

    page.click("form.language button[value=en]")
    page.wait_for_function("document.querySelector('h1').innerText === 'Job box'")
    card(page, "video", running.pk).locator(".step").wait_for()
    screenshot(page, "box-en")
    assert card(page, "video", running.pk).locator(".step").inner_text() == \
        "Step 2/4: transcode 720p"
    assert card(page, "video", broken.pk).locator(".error").inner_text() == \
        "The file is not a playable video."
    assert "ago" in card(page, "video", running.pk).locator(".times").inner_text()


def test_a_refused_upload_is_explained_in_korean_without_its_code(server, alice, open_browser):
    page = page_of(alice, server, open_browser)
    page.set_input_files("#sheet-form input[name=file]", files=[
        {"name": "scores.xlsx", "mimeType": "application/octet-stream", "buffer": b"no zip"}])
    page.click("#sheet-form button[type=submit]")
    messages = page.locator("#sheet-form .messages .error")
    messages.nth(1).wait_for()
    screenshot(page, "refused-upload-ko")
    assert messages.all_inner_texts() == ["올리기가 거부되었습니다:",
                                          "엑셀 통합 문서(.xlsx)가 아닙니다."]
    assert "not_xlsx" not in page.locator("#sheet-form").inner_text()


def test_a_large_report_reads_as_a_table_with_a_chart_page_by_page(server, alice, open_browser):
    job_id = done_job(alice, grade_report(1000, bad_rows=30))
    page = page_of(alice, server, open_browser)
    row = card(page, "ai_job", job_id)
    row.locator(".report table.students tbody tr").first.wait_for()
    screenshot(page, "report-large-ko")

    assert row.locator(".percent").inner_text() == "100%"
    assert fill_colour(row) == GREEN
    headings = row.locator("table.students thead th").all_inner_texts()
    assert headings == ["학생", *SUBJECTS, "총점", "평균", "석차"]
    stats_headings = row.locator("table.subject-stats thead th").all_inner_texts()
    assert stats_headings == ["과목", "인원", "평균", "중앙값", "최저", "최고", "표준편차 (모집단)"]
    assert row.locator("table.subject-stats tbody th").all_inner_texts() == SUBJECTS
    assert row.locator("svg.chart g.subject").count() == len(SUBJECTS)
    assert row.locator("svg.chart").get_attribute("aria-label") == "과목별 점수 분포"

    students = row.locator("table.students tbody tr")
    assert students.count() == 20
    first = students.first.locator("th, td").all_inner_texts()
    top = grade_report(1000)["students"][0]
    assert first[0] == top["student"] and first[-1] == "1"
    # Averages read alike down the column: two decimals each, a whole one too ("84.00").
    averages = [cells.locator("td").nth(-2).inner_text() for cells in students.all()]
    assert all(re.fullmatch(r"\d+\.\d\d", average) for average in averages), averages
    means = row.locator("table.subject-stats tbody tr").first.locator("td").all_inner_texts()
    assert re.fullmatch(r"\d+\.\d\d", means[1]), means  # the mean, after the count
    pager = row.locator(".paged[data-section=students] .pager")
    assert pager.locator(".where").inner_text() == "쪽 1 / 50"
    pager.locator("button", has_text="다음").click()
    pager.locator(".where", has_text="쪽 2 / 50").wait_for()
    # Row 21 of 1,000 comes from the paged endpoint: the poll carried only the first 20.
    expected = grade_report(1000)["students"][20]["student"]
    assert students.first.locator("th").inner_text() == expected
    assert len(page.content()) < 200_000  # 20 rows on the page, not 1,000

    bad = row.locator("details.bad-rows")
    assert bad.locator("summary").inner_text() == "제외된 행 (30)"
    bad.locator("summary").click()
    reasons = bad.locator("tbody td").all_inner_texts()
    assert reasons[0] == "'수학' 점수가 숫자가 아닙니다 ('결석0')"
    screenshot(page, "report-large-ko-page2")


def test_the_page_has_an_icon(server, alice, open_browser):
    page = page_of(alice, server, open_browser)
    href = page.locator("link[rel=icon]").get_attribute("href")
    response = page.request.get(f"{server}{href}")
    assert response.status == 200 and b"<svg" in response.body()
