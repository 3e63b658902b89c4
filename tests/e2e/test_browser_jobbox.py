"""The job-box page in a real browser (Debian's Chromium through Playwright): sign in, watch a
job driven by the real video services reach READY without a reload, tenants kept apart, the
polling fallback, refused uploads explained, Korean by default."""

import os

import pytest

from academy.videos import services
from tests.browser import job_row, password_of, sign_in
from tests.video_helpers import new_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser,
              pytest.mark.usefixtures("on_private_redis")]


def test_a_signed_in_person_watches_a_job_reach_ready_without_reload(server, alice,
                                                                     open_browser):
    page = sign_in(open_browser(), server, alice.user.username, password_of(alice))
    assert page.locator("h1").inner_text() == "작업함"  # Korean by default
    page.wait_for_selector("#connection[data-mode=live]")
    page.evaluate("window.notReloaded = true")

    video = new_video(alice, "첫 강의")
    row = job_row(page, video)
    row.and_(page.locator("[data-status=UPLOADED]")).wait_for()
    assert row.locator(".title").inner_text() == "첫 강의"
    assert row.locator(".status").inner_text() == "대기 중"

    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=40, step_index=2, step_total=4,
                                   step_name="transcode 360p", step_percent=60)
    row.locator(".bar[data-percent='40']").wait_for()
    assert row.locator(".step").inner_text() == "단계 2/4: 360p 변환"  # the step translated

    services.report_video_progress(video.pk, percent=80, step_index=3, step_total=4,
                                   step_name="transcode 720p")
    row.locator(".bar[data-percent='80']").wait_for()
    assert "720p 변환" in row.locator(".step").inner_text()

    services.complete_video(video.pk, f"hls/{video.pk}/master.m3u8", duration=12)
    row.and_(page.locator("[data-status=READY]")).wait_for()
    assert row.locator(".bar").get_attribute("data-percent") == "100"
    assert row.locator("button.play").is_visible()
    assert page.evaluate("window.notReloaded") is True


def test_a_second_tenants_browser_never_sees_the_first_tenants_jobs(server, alice, bob,
                                                                   open_browser):
    alices_page = sign_in(open_browser(), server, alice.user.username, password_of(alice))
    bobs_page = sign_in(open_browser(), server, bob.user.username, password_of(bob))
    for page in (alices_page, bobs_page):
        page.wait_for_selector("#connection[data-mode=live]")

    alices = new_video(alice, "alpha only")
    services.mark_processing(alices.pk, worker_id="w1")
    services.report_video_progress(alices.pk, percent=50, step_index=1, step_total=2)
    services.complete_video(alices.pk, "hls/x/master.m3u8", duration=5)
    job_row(alices_page, alices).and_(alices_page.locator("[data-status=READY]")).wait_for()

    bobs = new_video(bob, "beta's own")
    job_row(bobs_page, bobs).wait_for()  # bob's page is live, and shows bob's job only
    assert bobs_page.locator("li.job").count() == 1
    assert "alpha only" not in bobs_page.content()
    bobs_page.reload()
    job_row(bobs_page, bobs).wait_for()
    assert bobs_page.locator("li.job").count() == 1


def test_without_the_stream_the_page_keeps_up_by_polling(server, alice, open_browser):
    context = open_browser()
    context.route("**/api/jobbox/stream*", lambda route: route.fulfill(status=503, body="{}"))
    page = sign_in(context, server, alice.user.username, password_of(alice))
    page.wait_for_selector("#connection[data-mode=polling]")
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.complete_video(video.pk, "hls/1/master.m3u8", duration=5)
    job_row(page, video).and_(page.locator("[data-status=READY]")).wait_for()


def test_a_refused_upload_shows_the_services_message(server, alice, open_browser):
    context = open_browser()
    # The upload endpoint's 400 (its contract: DRF's field errors), answered here as it would.
    context.route("**/api/videos/", lambda route: route.fulfill(
        status=400, content_type="application/json",
        body='{"file": ["동영상으로 재생할 수 없는 파일입니다."]}'))
    page = sign_in(context, server, alice.user.username, password_of(alice))
    page.fill("#video-form input[name=title]", "lecture")
    page.set_input_files("#video-form input[name=file]", files=[
        {"name": "notes.mp4", "mimeType": "video/mp4", "buffer": b"just text"}])
    page.click("#video-form button[type=submit]")
    messages = page.locator("#video-form .messages .error")
    messages.nth(1).wait_for()
    assert messages.all_inner_texts() == ["올리기가 거부되었습니다:",
                                          "동영상으로 재생할 수 없는 파일입니다."]


def test_the_page_switches_to_english_and_back(server, alice, open_browser):
    page = sign_in(open_browser(), server, alice.user.username, password_of(alice))
    page.click("form.language button[value=en]")
    page.wait_for_function("document.querySelector('h1').innerText === 'Job box'")
    assert page.locator("#video-form button[type=submit]").inner_text() == "Upload"
    page.click("form.language button[value=ko]")
    page.wait_for_function("document.querySelector('h1').innerText === '작업함'")


def test_signing_in_with_a_wrong_password_is_refused(server, alice, open_browser):
    page = open_browser().new_page()
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", alice.user.username)
    page.fill("input[name=password]", "wrong")
    page.click("#login-form button[type=submit]")
    assert page.locator("p.error").inner_text().startswith("아이디와 비밀번호가")
    assert os.path.basename(page.url.rstrip("/")) == "login"
