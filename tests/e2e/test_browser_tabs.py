"""The page's tabs share one event stream (a leader elected by Web Locks), a new leader takes
over when the leader tab closes, and a job that ends while no tab is seen is told by a system
notification — in Debian's Chromium."""

import time

import pytest

from academy.videos import services
from jobbox import keys
from jobbox.client import get_redis
from process_tools import wait_until
from tests.browser import job_row, password_of, sign_in
from tests.video_helpers import new_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser,
              pytest.mark.usefixtures("on_private_redis")]

TABS = 5
# Hidden-ness cannot be produced in a headless browser: the page is told it is hidden.
PRETEND_HIDDEN = """
Object.defineProperty(document, "hidden", {get: () => window.__hidden === true});
window.__notes = [];
const Real = window.Notification;
window.Notification = function (title, options) {
  window.__notes.push({title, body: options && options.body});
  return {close() {}, set onclick(f) { window.__click = f; }};
};
Object.defineProperty(window.Notification, "permission", {get: () => "granted"});
window.Notification.requestPermission = () => Promise.resolve("granted");
"""


def open_streams(member) -> int:
    return get_redis().zcard(keys.owner_streams_key(str(member.tenant.pk), str(member.user.pk)))


def leaders(pages) -> list:
    return [page for page in pages if page.evaluate("window.JobboxTabs.isLeader()")]


def open_tabs(context, server, member, count):
    context.add_init_script(PRETEND_HIDDEN)
    first = sign_in(context, server, member.user.username, password_of(member))
    pages = [first] + [context.new_page() for _ in range(count - 1)]
    for page in pages[1:]:
        page.goto(f"{server}/")
    for page in pages:
        page.wait_for_selector("#connection[data-mode=live]")
    return pages


def test_five_tabs_hold_one_stream_and_a_new_leader_takes_over(server, alice, open_browser):
    context = open_browser()
    pages = open_tabs(context, server, alice, TABS)
    wait_until(lambda: len(leaders(pages)) == 1, timeout_seconds=30)
    wait_until(lambda: open_streams(alice) == 1, timeout_seconds=30)
    assert open_streams(alice) == 1

    video = new_video(alice, "shared")
    services.mark_processing(video.pk, worker_id="w1")
    for page in pages:  # every tab shows it, from the one stream
        job_row(page, video).and_(page.locator("[data-status=PROCESSING]")).wait_for()

    [leader] = leaders(pages)
    leader.close()
    closed_at = time.monotonic()
    rest = [page for page in pages if page is not leader]
    wait_until(lambda: len(leaders(rest)) == 1, timeout_seconds=30)
    takeover_seconds = time.monotonic() - closed_at
    print(f"a new leader took over {takeover_seconds:.2f} s after the leader tab closed")

    services.complete_video(video.pk, "hls/x/master.m3u8", duration=5)
    for page in rest:
        job_row(page, video).and_(page.locator("[data-status=READY]")).wait_for()
    wait_until(lambda: open_streams(alice) == 1, timeout_seconds=30)


def test_a_job_that_ends_while_no_tab_is_seen_is_told_by_a_notification(server, alice,
                                                                      open_browser):
    context = open_browser()
    [page] = open_tabs(context, server, alice, 1)
    video = new_video(alice, "첫 강의")
    services.mark_processing(video.pk, worker_id="w1")
    job_row(page, video).and_(page.locator("[data-status=PROCESSING]")).wait_for()

    page.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")
    services.complete_video(video.pk, "hls/x/master.m3u8", duration=5)
    page.wait_for_function("window.__notes.length === 1")
    note = page.evaluate("window.__notes[0]")
    assert note["title"] == "준비됨: 첫 강의" or note["title"].endswith(": 첫 강의")
    assert note["body"] == "작업함의 작업이 끝났습니다."  # in the person's language
    page.evaluate("window.__click()")
    assert "focused" in job_row(page, video).get_attribute("class")


def test_a_job_that_ends_while_the_page_is_seen_is_not_notified(server, alice, open_browser):
    context = open_browser()
    [page] = open_tabs(context, server, alice, 1)
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    services.complete_video(video.pk, "hls/x/master.m3u8", duration=5)
    job_row(page, video).and_(page.locator("[data-status=READY]")).wait_for()
    assert page.evaluate("window.__notes.length") == 0
