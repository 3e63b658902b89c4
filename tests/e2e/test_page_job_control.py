"""The job-box page's control over a job, in a real browser (Debian's Chromium through
Playwright): Cancel on a running video, then Retry, the log behind its toggle, the time left."""

import pytest

from academy.videos import services
from academy.videos.models import Video
from jobbox import append_log, write
from tests.browser import browsers, live_page
from tests.video_helpers import new_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser,
              pytest.mark.usefixtures("on_private_redis")]


def test_a_person_cancels_a_running_video_reads_its_log_and_runs_it_again(
        server, alice, monkeypatch, settings):
    # Every report is a rate sample and an event here: they come milliseconds apart.
    monkeypatch.setattr(write, "ETA_SAMPLE_MIN_MS", 0)
    settings.JOBBOX = {**settings.JOBBOX, "PROGRESS_EVENT_INTERVAL_MS": 0}
    with browsers() as open_browser:
        page = live_page(open_browser(), server, alice)
        video = new_video(alice, "잘못 올린 강의")
        services.mark_processing(video.pk, worker_id="w1")
        for percent in (10, 20, 30):
            services.report_video_progress(video.pk, percent=percent, step_index=2,
                                           step_total=4, step_name="transcode 360p")
        append_log("video", str(video.pk), "step 2/4: transcode 360p")
        row = page.locator(f"li.job[data-kind=video][data-id='{video.pk}']")
        row.and_(page.locator("[data-status=PROCESSING]")).wait_for()
        row.locator(".step", has_text="남음").wait_for()  # "about N s left", in Korean

        row.locator("button.log-toggle").click()
        row.locator(".log", has_text="step 2/4: transcode 360p").wait_for()

        row.locator("button.cancel").click()
        row.and_(page.locator("[data-status=CANCELLED]")).wait_for()
        assert row.locator(".status").inner_text() == "취소됨"
        assert Video.objects.get(pk=video.pk).status == "CANCELLED"
        assert row.locator("button.cancel").count() == 0

        row.locator("button.retry").click()
        row.and_(page.locator("[data-status=UPLOADED]")).wait_for()
        retried = Video.objects.get(pk=video.pk)
        assert (retried.status, retried.attempt) == ("UPLOADED", 2)
