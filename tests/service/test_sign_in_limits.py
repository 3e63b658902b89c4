"""Sign-in limits that hold: one counter per account however its name is typed, a burst
checked at most the limit's number of times, and no way for a stranger to lock the owner out
(academy.login_throttle). The address behind a header: tests/e2e/test_forwarded_address.py."""

import threading

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from academy.login_throttle import DEVICE_COOKIE_NAME, throttle_login

USERNAME = "la1"
PASSWORD = "the-right-password-1"
# The account's two compatibility forms the sign-in form folds into `la1` (NFKC).
FULLWIDTH = "\uff4c\uff41\uff11"  # fullwidth l, a, 1
MATHEMATICAL_BOLD = "\U0001d425\U0001d41a\U0001d7cf"  # bold l, a, 1
ATTACKER = "198.51.100.66"
OWNER = "203.0.113.10"
# The burst of concurrent wrong passwords for one account.
BURST = 150


@pytest.fixture(autouse=True)
def fast_hasher(settings) -> None:
    # These tests count sign-ins, not the hash's cost (PBKDF2 takes seconds on a loaded box).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def la1(db: None) -> None:
    get_user_model().objects.create_user(username=USERNAME, password=PASSWORD)


def sign_in(username: str, password: str, address: str, client: Client | None = None) -> int:
    client = client or Client(REMOTE_ADDR=address)
    return client.post("/login/", {"username": username, "password": password},
                       REMOTE_ADDR=address).status_code


def wrong_guesses(count: int, address: str, username: str = USERNAME) -> list[int]:
    return [sign_in(username, f"guess-{n}", address) for n in range(count)]


def test_compatibility_forms_of_a_username_count_against_the_same_account(la1):
    # The form signs them in as la1: they are the account's name, not other names.
    assert sign_in(FULLWIDTH, PASSWORD, OWNER) == 302
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
    assert wrong_guesses(limit, ATTACKER) == [200] * limit
    assert sign_in(FULLWIDTH, "one-more", ATTACKER) == 429
    assert sign_in(MATHEMATICAL_BOLD, "one-more", ATTACKER) == 429
    assert sign_in(f"  {USERNAME} ", "one-more", ATTACKER) == 429


def test_a_burst_of_concurrent_wrong_passwords_reaches_the_check_at_most_the_limit(la1):
    checked: list[str] = []
    answered = threading.Semaphore(0)
    release = threading.Event()

    def password_check(request: HttpRequest) -> HttpResponse:
        checked.append(request.POST["password"])
        release.wait(timeout=120)  # every attempt of the burst is in flight together
        return HttpResponse("the form again", status=200)

    view = throttle_login(password_check)
    factory = RequestFactory()
    statuses: list[int] = []

    def attempt(n: int) -> None:
        request = factory.post("/login/", {"username": USERNAME, "password": f"guess-{n}"},
                               REMOTE_ADDR=ATTACKER)
        statuses.append(view(request).status_code)
        answered.release()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(BURST)]
    for thread in threads:
        thread.start()
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
    for _ in range(BURST - limit):  # the refused ones answer while the others are held
        assert answered.acquire(timeout=120)
    release.set()
    for thread in threads:
        thread.join(timeout=120)
    assert len(checked) == limit
    assert sorted(statuses) == [200] * limit + [429] * (BURST - limit)


def test_a_stranger_guessing_elsewhere_does_not_lock_the_owner_out(la1):
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
    assert wrong_guesses(limit + 5, ATTACKER) == [200] * limit + [429] * 5
    assert sign_in(USERNAME, PASSWORD, OWNER) == 302


def test_the_account_wide_backoff_spares_a_browser_that_signed_in_before(la1):
    owners_browser = Client()
    assert sign_in(USERNAME, PASSWORD, OWNER, client=owners_browser) == 302
    assert DEVICE_COOKIE_NAME in owners_browser.cookies
    per_address = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
    addresses = settings.LOGIN_FAILURES_PER_ACCOUNT // per_address
    for n in range(addresses):  # a guesser spread over addresses fills the account's count
        wrong_guesses(per_address, f"198.51.100.{n + 1}")
    assert sign_in(USERNAME, "another-guess", "198.51.100.200") == 429
    assert sign_in(USERNAME, PASSWORD, "192.0.2.44") == 429  # a new browser waits
    assert sign_in(USERNAME, PASSWORD, OWNER, client=owners_browser) == 302
