"""Bogus tokens cost bounded reads without locking out valid ones (jobbox.auth.token_misses),
and cached principals do not all expire together (jobbox.auth.principals)."""

import secrets

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobbox import conf, keys
from jobbox.auth import token_misses
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)

SCHOOL_NAT = "203.0.113.50"
# The flood: random tokens a second from one address, and the valid token's tries meanwhile.
# The shared pool is scaled down with it (4 reads a second instead of the default 20), so the
# flood's share of the pool is close to that of 9 a second against the defaults, in a quarter
# of the requests.
BOGUS_PER_SECOND = 2
POOL_PER_MINUTE = 240
TRIES = 22
SECONDS_BETWEEN_TRIES = 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poll_with(token: str, video_id: int) -> int:
    return Client().get(f"/api/videos/{video_id}/", REMOTE_ADDR=SCHOOL_NAT,
                        HTTP_AUTHORIZATION=f"Token {token}").status_code


def test_a_valid_token_behind_an_address_flooding_bogus_tokens_is_served(alice, monkeypatch,
                                                                         settings):
    settings.JOBBOX = {**settings.JOBBOX, "TOKEN_MISS_POOL_PER_MINUTE": POOL_PER_MINUTE}
    video = new_video(alice)
    clock = FakeClock()
    monkeypatch.setattr(token_misses.budget, "clock", clock)
    answers = []
    for _ in range(TRIES):
        for _ in range(SECONDS_BETWEEN_TRIES):
            clock.now += 1
            for _ in range(BOGUS_PER_SECOND):
                assert poll_with(secrets.token_hex(20), video.pk) == 401
        # Not cached (its entry expired): the valid token needs the database read.
        outside_redis().delete(keys.token_principal_key(alice.token))
        answers.append(poll_with(alice.token, video.pk))
    assert answers == [200] * TRIES


def test_a_repeated_bogus_token_is_read_once(alice):
    video = new_video(alice)
    bogus = secrets.token_hex(20)
    with CaptureQueriesContext(connection) as reads:
        for _ in range(conf.settings().TOKEN_MISSES_PER_MINUTE * 2):
            assert poll_with(bogus, video.pk) == 401
    assert sum("authtoken_token" in query["sql"] for query in reads.captured_queries) == 1


def test_principals_filled_together_do_not_expire_together(alice):
    video = new_video(alice)
    redis = outside_redis()
    ttls = []
    for _ in range(30):
        redis.delete(keys.token_principal_key(alice.token))
        assert poll_with(alice.token, video.pk) == 200
        ttls.append(redis.ttl(keys.token_principal_key(alice.token)))
    ttl = conf.settings().PRINCIPAL_TTL_SECONDS
    # Spread over seconds, not a second's rounding (30 draws of +-30 s: never within 2 s).
    assert max(ttls) - min(ttls) > 2
    assert all(ttl * 0.9 - 1 <= found <= ttl * 1.1 for found in ttls)
