"""Cheap abuse refused (docs/explanation/invariants.md, invariant 10): a malformed `Authorization`
header never falls through to the session, bogus tokens leave no Redis key and cost a bounded number
of database reads, and a box has a size bound whatever its jobs hold."""

import secrets

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from academy.videos.tracking import VideoTracking
from jobbox import conf
from jobbox.auth import token_misses
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)

ATTACKER = "203.0.113.7"


def session_client(member, *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    assert client.login(username=member.user.username, password="pw-" + member.tenant.slug)
    return client


@pytest.mark.parametrize("header", [
    "Token",  # no key
    "Token {key} {key}",  # two keys
    "Bearer {key}",
    "Basic YWxpY2U6cHc=",
    "garbage",
    "Token not-a-key!",
])
def test_a_malformed_authorization_header_is_a_401_never_the_session(alice, header):
    video = new_video(alice)
    client = session_client(alice, enforce_csrf=True)
    value = header.format(key=alice.token)
    assert client.get(f"/api/videos/{video.pk}/", HTTP_AUTHORIZATION=value).status_code == 401
    # A write with the session's cookie and no CSRF token: refused as unauthenticated, not
    # let through by a session class that the header should have excluded.
    response = client.post("/api/videos/", {"title": "x"}, HTTP_AUTHORIZATION=value)
    assert response.status_code == 401


def test_lower_case_token_keyword_is_accepted_like_drf(alice):
    video = new_video(alice)
    response = Client().get(f"/api/videos/{video.pk}/", HTTP_AUTHORIZATION=f"token {alice.token}")
    assert response.status_code == 200


def token_queries(context: CaptureQueriesContext) -> int:
    return sum("authtoken_token" in query["sql"] for query in context.captured_queries)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_random_tokens_leave_no_key_and_a_bounded_number_of_reads(alice, monkeypatch, settings):
    # Both budgets small, so ten times the address's budget is a few dozen requests.
    pool = 4  # the reads every address shares past its own budget
    settings.JOBBOX = {**settings.JOBBOX, "TOKEN_MISSES_PER_MINUTE": 6,
                       "TOKEN_MISS_POOL_PER_MINUTE": pool}
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200  # alice's principal is cached
    clock = FakeClock()
    monkeypatch.setattr(token_misses.budget, "clock", clock)
    keys_before = outside_redis().dbsize()
    budget = conf.settings().TOKEN_MISSES_PER_MINUTE
    bogus = 10 * budget
    with CaptureQueriesContext(connection) as reads:
        for _ in range(bogus):
            response = Client().get(f"/api/videos/{video.pk}/", REMOTE_ADDR=ATTACKER,
                                    HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
            assert response.status_code == 401
    assert token_queries(reads) == budget + pool  # not one per token
    assert outside_redis().dbsize() == keys_before  # not one key per token
    # The valid token keeps working meanwhile, from anywhere, at zero SQL.
    with CaptureQueriesContext(connection) as reads:
        assert poll(alice, video.pk).status_code == 200
    assert len(reads) == 0
    # A minute later the address has a new budget: again bounded.
    clock.now += token_misses.REFILL_WINDOW_SECONDS
    with CaptureQueriesContext(connection) as reads:
        for _ in range(bogus):
            Client().get(f"/api/videos/{video.pk}/", REMOTE_ADDR=ATTACKER,
                         HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
    assert token_queries(reads) == budget + pool


def test_another_address_keeps_its_budget(alice, bob, monkeypatch):
    video = new_video(bob)
    monkeypatch.setattr(token_misses.budget, "clock", FakeClock())
    for _ in range(conf.settings().TOKEN_MISSES_PER_MINUTE + 5):
        Client().get(f"/api/videos/{video.pk}/", REMOTE_ADDR=ATTACKER,
                     HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
    # Bob's token, not cached yet, from his own address: read from the database and served.
    response = bob.client().get(f"/api/videos/{video.pk}/", REMOTE_ADDR="198.51.100.2")
    assert response.status_code == 200


def huge_render(self, fields, progress):
    return {"id": int(fields["id"]), "status": fields["status"], "blob": "x" * 2_000_000}


def test_a_huge_entry_is_summarised_and_the_box_is_bounded(alice, monkeypatch):
    videos = [new_video(alice, f"video {n}") for n in range(3)]
    monkeypatch.setattr(VideoTracking, "render", huge_render)
    response = alice.client().get("/api/jobbox/")
    assert response.status_code == 200
    assert len(response.content) <= conf.settings().BOX_MAX_BYTES
    entries = response.json()["jobs"]
    assert sorted(entry["id"] for entry in entries) == sorted(str(v.pk) for v in videos)
    for entry in entries:
        assert entry["truncated"] is True
        assert entry["job"] == {"status": "UPLOADED"}


def test_a_box_stops_at_its_byte_budget_and_says_how_many_it_left_out(alice):
    for n in range(12):
        new_video(alice, f"lecture {n:02d} " + "t" * 150)
    whole = alice.client().get("/api/jobbox/")
    assert len(whole.json()["jobs"]) == 12 and "omitted" not in whole.json()
    with override_settings(JOBBOX={**_jobbox_settings(), "BOX_MAX_BYTES": len(whole.content) // 2}):
        half = alice.client().get("/api/jobbox/")
    body = half.json()
    assert len(half.content) <= len(whole.content) // 2
    assert body["omitted"] == 12 - len(body["jobs"]) > 0
    assert body["jobs"] == whole.json()["jobs"][: len(body["jobs"])]  # the newest kept


def _jobbox_settings() -> dict:
    from django.conf import settings

    return dict(settings.JOBBOX)
