"""Sign-in attempts throttled per account, per address and per account from one address.

Three counters of failed sign-ins live in Redis, each for a window (LOGIN_THROTTLE_WINDOW_
SECONDS, 15 minutes) from its first failure:

- account and address (LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS, 10): a guesser at one address
  is stopped at this many guesses for one account; the owner elsewhere is not affected;
- address (LOGIN_FAILURES_PER_ADDRESS, 50): one address rotating usernames is stopped; a
  school behind one NAT still has room;
- account, from every address together (LOGIN_FAILURES_PER_ACCOUNT, 30): the slower backoff
  that bounds a guesser spread over many addresses. A browser that signed in to the account
  before carries a signed "known device" cookie and is exempt from this one counter, so a
  guesser cannot lock the owner out of their usual browser.

The account is named by its username exactly as authentication reads it (the sign-in form's
stripping and NFKC, then the user model's own normalisation), case-folded on top, so the
fullwidth and the mathematical-bold forms of `la1` share its count. An attempt is reserved
against every counter before the password is checked, in one Redis script (check and
increment together): a burst of concurrent guesses reaches the password at most the limit's
number of times. An attempt that signs in (or never reaches the password) gives its
reservation back.

The client's address is the peer's (REMOTE_ADDR): the server in front rewrites it from a
proxy header only when the peer is a trusted proxy (academy.run, FORWARDED_ALLOW_IPS). An IPv6
client is counted by its /64, which one host usually holds whole. A Redis outage lets
sign-ins through (logged): the page stays usable, as polls do.
"""

import hashlib
import ipaddress
import logging
from collections.abc import Callable
from functools import cache, wraps
from importlib.resources import files
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UsernameField
from django.core import signing
from django.http import HttpRequest, HttpResponse
from redis.commands.core import Script

from jobbox import conf
from jobbox.client import RedisUnavailable, get_redis, redis_errors

logger = logging.getLogger(__name__)

# Hex characters of the username's hash in its key: 128 bits, whatever the username's length.
ACCOUNT_KEY_HEX_CHARS = 32
# IPv6 clients are counted by their /64: a single host is usually handed a whole /64.
IPV6_PREFIX_BITS = 64
# The known-device cookie: set when a browser signs in, it exempts that browser from the
# account-wide counter for this long (a month of everyday use; signing in again renews it).
DEVICE_COOKIE_NAME = "signin_device"
DEVICE_COOKIE_MAX_AGE_SECONDS = 30 * 24 * 60 * 60
_DEVICE_COOKIE_SALT = "academy.login_throttle.device"

View = Callable[..., HttpResponse]


def throttle_login(view: View) -> View:
    """Wrap a login view: 429 past the limits; a failed POST (the form again, 200) counts."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        account = account_key(str(request.POST.get("username", "")))
        limits = _limits(request, account)
        if not _reserve(limits):
            return _too_many()
        failed = False
        try:
            response = view(request, *args, **kwargs)
            failed = response.status_code == 200  # the form shown again: the sign-in failed
        finally:
            if not failed:
                _release(list(limits))
        if response.status_code == 302:
            _remember_device(response, account)
        return response

    return wrapped


def login_username(raw: str) -> str:
    """The username authentication looks up for what was typed: the sign-in form's own field
    (strips, NFKC) and the user model's normalisation, case-folded so the counter also holds
    under a case-insensitive database collation."""
    typed = UsernameField().to_python(raw)
    return get_user_model().normalize_username(typed).casefold()


# --- Key names: every sign-in counter's name is built here. -------------------------------
# They share one hash tag, so one script reads and writes them together on a Redis Cluster
# (sign-ins are rare enough for one slot).

def _counter_key(suffix: str) -> str:
    return f"{conf.settings().KEY_PREFIX}login-throttle:{{counters}}:{suffix}"


def account_key(username: str) -> str:
    """The account's part of a counter's name: a bounded hash of the normalised username."""
    digest = hashlib.sha256(login_username(username).encode("utf-8", "surrogatepass"))
    return f"account:{digest.hexdigest()[:ACCOUNT_KEY_HEX_CHARS]}"


def address_key(remote_addr: str) -> str:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return "address:unknown"
    if address.version == 6:
        return f"address:{ipaddress.ip_network(f'{address}/{IPV6_PREFIX_BITS}', strict=False)}"
    return f"address:{address}"


def _limits(request: HttpRequest, account: str) -> dict[str, int]:
    """Each counter's key and its limit for this request, narrowest first."""
    address = address_key(request.META.get("REMOTE_ADDR", ""))
    limits = {
        _counter_key(f"{account}:{address}"): settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS,
        _counter_key(address): settings.LOGIN_FAILURES_PER_ADDRESS,
    }
    if not _known_device(request, account):
        limits[_counter_key(account)] = settings.LOGIN_FAILURES_PER_ACCOUNT
    return limits


# --- The counters in Redis. ---------------------------------------------------------------

@cache
def _source(name: str) -> str:
    return files("academy").joinpath("lua", f"{name}.lua").read_text()


def _script(name: str) -> Script:
    client = get_redis()
    registered: dict[str, Script] = client.__dict__.setdefault("_academy_scripts", {})
    if name not in registered:
        registered[name] = client.register_script(_source(name))
    return registered[name]


def _reserve(limits: dict[str, int]) -> bool:
    """Whether the attempt may go on: reserved against every counter, none at its limit."""
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    try:
        with redis_errors():
            full = _script("login_reserve")(keys=list(limits), args=[window, *limits.values()])
    except RedisUnavailable:
        logger.warning("login throttle unavailable (Redis); sign-in not throttled")
        return True
    return int(full) == 0


def _release(keys: list[str]) -> None:
    try:
        with redis_errors():
            _script("login_release")(keys=keys)
    except RedisUnavailable:
        logger.warning("login throttle: a sign-in's reservation was not given back")


# --- The known-device cookie. -------------------------------------------------------------

def _known_device(request: HttpRequest, account: str) -> bool:
    cookie = request.COOKIES.get(DEVICE_COOKIE_NAME, "")
    try:
        signed = signing.loads(cookie, salt=_DEVICE_COOKIE_SALT,
                               max_age=DEVICE_COOKIE_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return False
    return signed == account


def _remember_device(response: HttpResponse, account: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE_NAME, signing.dumps(account, salt=_DEVICE_COOKIE_SALT),
        max_age=DEVICE_COOKIE_MAX_AGE_SECONDS, httponly=True, samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def _too_many() -> HttpResponse:
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    response = HttpResponse(
        f"Too many failed sign-ins. Try again in {window // 60} minutes.\n",
        status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(window)
    return response
