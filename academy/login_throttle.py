"""Sign-in attempts throttled per account and per address (docs/explanation/invariants.md,
invariant 10: sign-in had no throttle).

Failed sign-ins are counted in Redis (Django's cache alias `login_throttle`) under two
bounded keys: a hash of the normalised username and the client's address (an IPv6 client by
its /64, which one host usually holds whole). Past either limit within the window, a sign-in
is answered 429 before the password is checked, which also spares the password hash's CPU.
A Redis outage lets sign-ins through (logged): the page stays usable, as polls do
(docs/explanation/invariants.md, invariant 6).

Limits: settings LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURES_PER_ADDRESS,
LOGIN_THROTTLE_WINDOW_SECONDS (docs/how-to/limits.md).
"""

import hashlib
import ipaddress
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CACHE_ALIAS = "login_throttle"
# Hex characters of the username's hash in its key: 128 bits, whatever the username's length.
ACCOUNT_KEY_HEX_CHARS = 32
# IPv6 clients are counted by their /64: a single host is usually handed a whole /64.
IPV6_PREFIX_BITS = 64

View = Callable[..., HttpResponse]


def throttle_login(view: View) -> View:
    """Wrap a login view: 429 past the limits; a failed POST (the form again, 200) counts."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        limits = _limits(request)
        if _over_limit(limits):
            return _too_many()
        response = view(request, *args, **kwargs)
        if response.status_code == 200:  # the form shown again: the sign-in failed
            _count_failure(limits)
        return response

    return wrapped


def account_key(username: str) -> str:
    digest = hashlib.sha256(username.strip().casefold().encode("utf-8", "replace"))
    return f"account:{digest.hexdigest()[:ACCOUNT_KEY_HEX_CHARS]}"


def address_key(remote_addr: str) -> str:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return "address:unknown"
    if address.version == 6:
        return f"address:{ipaddress.ip_network(f'{address}/{IPV6_PREFIX_BITS}', strict=False)}"
    return f"address:{address}"


def _limits(request: HttpRequest) -> dict[str, int]:
    """Each counter's key and its limit for this request."""
    return {
        account_key(str(request.POST.get("username", ""))): settings.LOGIN_FAILURES_PER_ACCOUNT,
        address_key(request.META.get("REMOTE_ADDR", "")): settings.LOGIN_FAILURES_PER_ADDRESS,
    }


def _over_limit(limits: dict[str, int]) -> bool:
    try:
        counts = caches[CACHE_ALIAS].get_many(list(limits))
    except RedisError:
        logger.warning("login throttle unavailable (Redis); sign-in not throttled")
        return False
    return any(int(counts.get(key) or 0) >= limit for key, limit in limits.items())


def _count_failure(limits: dict[str, int]) -> None:
    cache = caches[CACHE_ALIAS]
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    try:
        for key in limits:
            cache.add(key, 0, timeout=window)  # the window starts at the first failure
            cache.incr(key)
    except (RedisError, ValueError):  # ValueError: the key expired between add and incr
        logger.warning("login throttle: a failed sign-in was not counted")


def _too_many() -> HttpResponse:
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    response = HttpResponse(
        f"Too many failed sign-ins. Try again in {window // 60} minutes.\n",
        status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(window)
    return response
