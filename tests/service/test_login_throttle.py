"""The page's sign-in is throttled per account and per address (academy.login_throttle;
docs/how-to/limits.md, "Sign-in")."""

import pytest
from django.test import Client

from academy.login_throttle import address_key
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db

ACCOUNT_LIMIT = 3
ADDRESS_LIMIT = 5
ACCOUNT_AND_ADDRESS_LIMIT = 2
# Far above the limits: without a throttle every one of these would be checked.
GUESSES = 20


@pytest.fixture(autouse=True)
def small_limits(settings) -> None:
    # A fast hasher: these tests count sign-ins, not the hash's cost (PBKDF2 took seconds
    # per sign-in on the loaded test machine).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_FAILURES_PER_ACCOUNT = ACCOUNT_LIMIT
    settings.LOGIN_FAILURES_PER_ADDRESS = ADDRESS_LIMIT
    settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = ACCOUNT_AND_ADDRESS_LIMIT


def sign_in(username: str, password: str, address: str = "203.0.113.7") -> int:
    response = Client(REMOTE_ADDR=address).post(
        "/login/", {"username": username, "password": password})
    return response.status_code


def test_guessing_one_accounts_password_is_stopped_at_the_account_limit(alice):
    username = alice.user.username
    answers = [sign_in(username, f"guess-{n}", address=f"198.51.100.{n}")
               for n in range(GUESSES)]
    assert answers == [200] * ACCOUNT_LIMIT + [429] * (GUESSES - ACCOUNT_LIMIT)
    # Even the right password waits out the window: the guesser learns nothing.
    assert sign_in(username, "pw-alpha", address="198.51.100.250") == 429


def test_the_account_limit_leaves_other_accounts_alone(alice, bob):
    for n in range(ACCOUNT_LIMIT):
        sign_in(alice.user.username, f"guess-{n}", address=f"198.51.100.{n}")
    assert sign_in(bob.user.username, "pw-beta", address="198.51.100.99") == 302


def test_one_address_rotating_usernames_is_stopped_at_the_address_limit(alice):
    answers = [sign_in(f"user-{n}", "guess") for n in range(GUESSES)]
    assert answers == [200] * ADDRESS_LIMIT + [429] * (GUESSES - ADDRESS_LIMIT)
    assert sign_in(alice.user.username, "pw-alpha") == 429
    assert sign_in(alice.user.username, "pw-alpha", address="192.0.2.1") == 302


def test_a_correct_sign_in_is_never_counted(alice):
    attempts = ADDRESS_LIMIT + 2
    answers = [sign_in(alice.user.username, "pw-alpha") for _ in range(attempts)]
    assert answers == [302] * attempts


def test_counter_keys_are_bounded_whatever_the_username(alice):
    sign_in("x" * 100_000, "guess")
    keys = outside_redis().keys("*login-throttle*")
    # account and address, address, account: three counters, each name bounded.
    assert len(keys) == 3 and max(len(key) for key in keys) < 150


def test_an_ipv6_client_is_counted_by_its_64():
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("not an address") == "address:unknown"
