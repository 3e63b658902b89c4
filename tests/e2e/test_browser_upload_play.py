"""Upload a generated clip in the page, watch it transcode on a real worker without a reload,
and play it with hls.js: the job box end to end in a real browser.

Needs the video-transcode work (`academy.videos.tasks`, the upload endpoint, HLS serving at
/api/videos/<id>/hls/master.m3u8).
"""


import pytest

import academy.videos.tasks  # noqa: F401 - the transcoding task the worker runs
from tests.asgi_server import serve_page_with_worker
from tests.browser import browsers, sign_in
from tests.media import make_clip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
]

# Room for a worker on a busy 2-core machine to transcode a 2-second clip (not a speed test).
TRANSCODE_WAIT_MS = 180_000
# Tiny renditions and the fastest preset keep the shared machine's CPU free.
VIDEO_ENV = {"VIDEO_HLS_LADDER": "160x90:150,320x180:300", "VIDEO_X264_PRESET": "ultrafast",
             "VIDEO_FFMPEG_THREADS": "1"}


@pytest.fixture
def clip(tmp_path):
    """A 2-second clip with a tone, from ffmpeg's own test sources (no downloads)."""
    return make_clip(tmp_path / "lecture.mp4")


@pytest.fixture
def video_service(tmp_path, settings, monkeypatch, transactional_db):
    """The page's server and a Celery worker, both on the test database, Redis and media."""
    env = {"MEDIA_ROOT": str(tmp_path / "media"), **VIDEO_ENV}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.MEDIA_ROOT = env["MEDIA_ROOT"]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop, see browser
    with serve_page_with_worker(env["MEDIA_ROOT"]) as base:
        yield base


def test_upload_a_clip_watch_it_transcode_and_play_it(video_service, alice, clip):
    with browsers() as open_browser:
        page = sign_in(open_browser(), video_service, alice.user.username,
                       f"pw-{alice.tenant.slug}")
        page.wait_for_selector("#connection[data-mode=live]")
        page.evaluate("""() => {
            window.notReloaded = true;
            window.stepsSeen = [];
            new MutationObserver(() => document.querySelectorAll('li.job .step')
                .forEach((node) => node.textContent && window.stepsSeen.push(node.textContent)))
              .observe(document.getElementById('jobs'),
                       {subtree: true, childList: true, characterData: true});
        }""")
        page.fill("#video-form input[name=title]", "생성된 강의")
        page.set_input_files("#video-form input[name=file]", str(clip))
        page.click("#video-form button[type=submit]")
        page.locator("#video-form .messages .ok").wait_for()

        row = page.locator("li.job[data-kind=video]")
        row.and_(page.locator("[data-status=READY]")).wait_for(timeout=TRANSCODE_WAIT_MS)
        assert row.locator(".title").inner_text() == "생성된 강의"
        # The worker's "transcode 360p" step, in the page's language.
        assert any("변환" in step for step in page.evaluate("window.stepsSeen"))
        assert page.evaluate("window.notReloaded") is True

        row.locator("button.play").click()
        page.wait_for_function(
            "['loaded', 'playing'].includes(document.querySelector('.player video')"
            "?.dataset.state)")
        assert not page.locator(".player video").get_attribute("data-state").startswith("error")
