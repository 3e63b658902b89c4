"""The hot path (docs/explanation/architecture.md, "Where the time goes on a hot poll"): a hit is
one Redis round trip and a plain Django response of the very bytes and headers DRF sends; everything
else is DRF's, as before.

Each case is captured twice, through the direct path and through DRF alone
(`serve_hits_directly` off), from the same Redis and database state, and the full responses
(status, every header in order, cookies, body) must be equal.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from rest_framework.permissions import IsAdminUser
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from academy.tenants.models import Membership
from academy.videos import services
from academy.videos.views import VideoDetailView
from jobbox import keys
from jobbox.box import owner_hints
from jobbox.http.views import HitsServedDirectly, JobBoxView
from jobbox.scripts import script
from tests.ai_helpers import done_job
from tests.faults import database_unreachable, private_redis_server
from tests.members import Member, make_member
from tests.redis_peek import outside_redis
from tests.service.test_jobbox_api import redis_round_trips
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)

Capture = tuple[int, list[tuple[str, str]], str, bytes]


def full(response: Any) -> Capture:
    return (response.status_code, list(response.items()), response.cookies.output(),
            response.content)


@contextmanager
def drf_only() -> Iterator[None]:
    HitsServedDirectly.serve_hits_directly = False
    try:
        yield
    finally:
        HitsServedDirectly.serve_hits_directly = True


@contextmanager
def drf_dispatches() -> Iterator[list[str]]:
    """Records every request that went through DRF's `APIView.dispatch`."""
    seen: list[str] = []
    original = APIView.dispatch

    def counting(self: APIView, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(request.path)
        return original(self, request, *args, **kwargs)

    APIView.dispatch = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        APIView.dispatch = original  # type: ignore[method-assign]


def both_ways(request: Callable[[], Any], *, before_each: Callable[[], None] = lambda: None,
              warm: bool = True) -> tuple[Capture, Capture]:
    """The same request through the direct path and through DRF alone, from the same state
    (a first, unrecorded request fills the caches a running service has filled)."""
    if warm:
        before_each()
        request()
    before_each()
    direct = full(request())
    before_each()
    with drf_only():
        drf = full(request())
    return direct, drf


def running(member: Member, percent: int = 40) -> int:
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    services.report_video_progress(video.pk, percent=percent, step_index=2, step_total=4,
                                   step_name="transcode 720p", step_percent=15)
    return video.pk


def token_get(member: Member, path: str, **headers: str) -> Callable[[], Any]:
    return lambda: Client().get(path, HTTP_AUTHORIZATION=f"Token {member.token}", **headers)


def session_client(member: Member, slug: str) -> Client:
    client = Client()
    client.login(username=f"{slug}-user", password=f"pw-{slug}")
    return client


def assert_same(direct: Capture, drf: Capture, status: int) -> None:
    assert direct == drf
    assert direct[0] == status


def test_a_hit_by_token_is_the_same_response_either_way_and_skips_drf(alice):
    video_id = running(alice)
    direct, drf = both_ways(token_get(alice, f"/api/videos/{video_id}/"))
    assert_same(direct, drf, 200)
    assert dict(direct[1])["Allow"] == "GET, HEAD, OPTIONS"
    with drf_dispatches() as seen:
        token_get(alice, f"/api/videos/{video_id}/")()
    assert seen == []


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json; indent=4",
                                    "text/html", "application/json; q=0.5, */*"])
def test_every_accept_header_gets_the_same_response_either_way(alice, accept):
    video_id = running(alice)
    direct, drf = both_ways(token_get(alice, f"/api/videos/{video_id}/", HTTP_ACCEPT=accept))
    assert direct == drf


def test_a_query_string_and_drfs_format_override_get_the_same_response_either_way(alice):
    video_id = running(alice)
    for query in ("?_=12345", "?format=json", "?format=xml"):
        direct, drf = both_ways(token_get(alice, f"/api/videos/{video_id}/{query}"))
        assert direct == drf


def test_a_finished_job_and_an_ai_job_with_its_unicode_result_are_the_same_either_way(alice):
    video_id = running(alice)
    services.complete_video(video_id, f"hls/{video_id}/master.m3u8", duration=60)
    assert_same(*both_ways(token_get(alice, f"/api/videos/{video_id}/")), 200)
    job_id = done_job(alice, {"students": [{"student": "김민수", "note": "line\u2028sep"}]})
    direct, drf = both_ways(token_get(alice, f"/api/ai/jobs/{job_id}/"))
    assert_same(direct, drf, 200)
    assert "김민수".encode() in direct[3] and b"\\u2028" in direct[3]


def test_a_hit_by_session_is_the_same_response_either_way(alice):
    video_id = running(alice)
    client = session_client(alice, "alpha")
    direct, drf = both_ways(lambda: client.get(f"/api/videos/{video_id}/"))
    assert_same(direct, drf, 200)
    assert "Cookie" in dict(direct[1])["Vary"]


def test_middleware_after_a_direct_hit_sees_the_user_drf_would_have_set(alice,
                                                                        django_assert_num_queries):
    video_id = running(alice)
    seen = []
    request = RequestFactory().get(f"/api/videos/{video_id}/",
                                   HTTP_AUTHORIZATION=f"Token {alice.token}")
    VideoDetailView.as_view()(request, job_id=str(video_id))  # fills the principal
    request = RequestFactory().get(f"/api/videos/{video_id}/",
                                   HTTP_AUTHORIZATION=f"Token {alice.token}")
    with django_assert_num_queries(0), drf_dispatches() as dispatched:
        response = VideoDetailView.as_view()(request, job_id=str(video_id))
        seen.append((request.user.pk, request.user.is_authenticated))
    assert response.status_code == 200 and dispatched == []
    assert seen == [(alice.user.pk, True)]


def test_refusals_are_the_same_either_way(alice, bob):
    video_id = running(alice)
    outsider = get_user_model().objects.create_user(username="nobody", password="pw")
    stranger = make_member("gamma")
    Membership.objects.filter(user=stranger.user).delete()
    inactive = make_member("delta")
    get_user_model().objects.filter(pk=inactive.user.pk).update(is_active=False)
    path = f"/api/videos/{video_id}/"
    cases = {
        "another tenant's job": (token_get(bob, path), 404),
        "a missing job (negative entry)": (token_get(alice, "/api/videos/999999/"), 404),
        "a malformed id": (token_get(alice, "/api/videos/abc/"), 404),
        "an unknown token": (lambda: Client().get(path, HTTP_AUTHORIZATION="Token nope"), 401),
        "a malformed header": (lambda: Client().get(path, HTTP_AUTHORIZATION="Bearer x"), 401),
        "no credentials": (lambda: Client().get(path), 401),
        "an inactive user": (token_get(inactive, path), 401),
        "a user in no tenant": (token_get(stranger, path), 404),
        "a session user in no tenant": (lambda: _logged_in(outsider).get(path), 404),
    }
    for name, (request, status) in cases.items():
        direct, drf = both_ways(request)
        assert direct == drf, name
        assert direct[0] == status, name


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_garbage_in_redis_is_a_miss_either_way(alice):
    video_id = running(alice)
    redis = outside_redis()

    def garbage() -> None:
        redis.set(keys.token_principal_key(alice.token), b"{not json")
        redis.set(keys.status_key("video", str(video_id)), b"\xff garbage")

    direct, drf = both_ways(token_get(alice, f"/api/videos/{video_id}/"), before_each=garbage)
    assert_same(direct, drf, 200)


def test_a_database_outage_answers_the_same_503_either_way(alice):
    video_id, cached_id = running(alice), running(alice)
    get = token_get(alice, f"/api/videos/{video_id}/")
    get()
    token_get(alice, f"/api/videos/{cached_id}/")()
    outside_redis().delete(keys.status_key("video", str(video_id)))
    with database_unreachable():
        assert_same(*both_ways(get, warm=False), 503)
        assert_same(*both_ways(token_get(alice, f"/api/videos/{cached_id}/")), 200)


def test_a_hot_poll_is_one_redis_round_trip_and_no_sql(alice, django_assert_num_queries):
    video_id = running(alice)
    by_token = token_get(alice, f"/api/videos/{video_id}/")
    by_session = session_client(alice, "alpha")
    by_token()
    by_session.get(f"/api/videos/{video_id}/")
    with django_assert_num_queries(0), redis_round_trips() as sent:
        assert by_token().status_code == 200
    assert len(sent) == 1
    with django_assert_num_queries(0), redis_round_trips() as sent:
        assert by_session.get(f"/api/videos/{video_id}/").status_code == 200
    assert len(sent) == 1


def hot_poll(member: Member) -> tuple[int, Callable[[], Any], bytes]:
    """A running video polled until hot: its id, its poll, and the body a hit answers."""
    video_id = running(member)
    get = token_get(member, f"/api/videos/{video_id}/")
    get()
    return video_id, get, get().content


def test_a_miss_reads_redis_once_then_fills_from_the_database(alice,
                                                              django_assert_num_queries):
    video_id, get, expected = hot_poll(alice)
    outside_redis().delete(keys.status_key("video", str(video_id)))
    with django_assert_num_queries(1), redis_round_trips() as sent:
        response = get()
    assert response.content == expected
    # The read, then the fill's claim, its compare-and-set and its release: the miss reads
    # the job once (the round trip the direct path made), never a second time through DRF.
    assert len([s for s in sent if _reads_the_job(s)]) == 1


def test_a_redis_that_lost_its_scripts_answers_the_hot_poll_the_same(alice,
                                                                    django_assert_num_queries):
    _, get, expected = hot_poll(alice)
    outside_redis().script_flush()  # as a restarted or failed-over Redis: no script cached
    with django_assert_num_queries(0):
        assert get().content == expected  # NOSCRIPT, the script loaded, the read again
        assert get().content == expected


def _reads_the_job(sent: bytes | list[bytes]) -> bool:
    """A poll's read of the job: the hot path's script on a single Redis, HGETALL of the
    progress in a pipeline on a cluster."""
    packed = b"".join(sent) if isinstance(sent, list) else sent
    return b"HGETALL" in packed or script("read_job_with_principal").sha.encode() in packed


def test_the_box_is_the_same_either_way_and_one_round_trip_once_this_process_knows_whose(
        alice, django_assert_num_queries):
    for percent in (10, 60):
        running(alice, percent)
    client = session_client(alice, "alpha")  # a login saves the user: principals refill
    get = token_get(alice, "/api/jobbox/")
    direct, drf = both_ways(get)
    assert_same(direct, drf, 200)
    etag = dict(direct[1])["ETag"]
    assert_same(*both_ways(token_get(alice, "/api/jobbox/", HTTP_IF_NONE_MATCH=etag)), 304)
    assert_same(*both_ways(lambda: client.get("/api/jobbox/")), 200)
    assert_same(*both_ways(lambda: Client().get("/api/jobbox/", HTTP_AUTHORIZATION="Token x")),
                401)
    get()
    with django_assert_num_queries(0), redis_round_trips() as sent, drf_dispatches() as seen:
        assert get().status_code == 200
    assert len(sent) == 1 and seen == []


def test_a_wrong_hint_never_shows_another_persons_box(alice, bob):
    running(alice)
    bobs = running(bob)
    owner_hints.remember(keys.token_principal_key(alice.token),
                         (str(bob.tenant.pk), str(bob.user.pk)))
    response = token_get(alice, "/api/jobbox/")()
    assert response.status_code == 200
    assert bobs not in [entry["job"]["id"] for entry in response.json()["jobs"]]
    assert len(response.json()["jobs"]) == 1
    assert owner_hints.get(keys.token_principal_key(alice.token)) == (
        str(alice.tenant.pk), str(alice.user.pk))


def test_the_box_script_not_loaded_in_redis_is_read_the_usual_way(alice):
    with private_redis_server() as server:  # SCRIPT FLUSH is server-wide: our own server
        running(alice)
        get = token_get(alice, "/api/jobbox/")
        expected = get().content
        get()  # the hint is known now
        redis.Redis.from_url(server.url).script_flush()
        assert get().content == expected


def test_a_view_that_changes_drfs_machinery_keeps_drf_for_every_request(alice):
    video_id = running(alice)
    token_get(alice, f"/api/videos/{video_id}/")()
    strict = type("AdminOnlyVideoView", (VideoDetailView,), {"permission_classes": [IsAdminUser]})
    assert not strict._keeps_drf_defaults()
    assert JobBoxView._keeps_drf_defaults() and VideoDetailView._keeps_drf_defaults()
    request = APIRequestFactory().get(f"/api/videos/{video_id}/",
                                      HTTP_AUTHORIZATION=f"Token {alice.token}")
    assert strict.as_view()(request, job_id=str(video_id)).status_code == 403
