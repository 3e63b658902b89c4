"""Who is asking, at zero SQL per request (DESIGN.md, invariant 1 and "Authentication").

Django's session auth and DRF's token auth each read the database on every request. Here a
token or a session resolves to a `Principal` (user and tenant) cached in Redis, filled from
the database on a miss and deleted whenever the token, the user or the user's membership
changes (`jobbox.auth.invalidation`). Sessions themselves live in signed cookies (no store
to read); the cookie's session hash is checked against the cached one, so a password change
still ends old sessions.

While Redis is unavailable, principals come from the database through a per-process cache
(`jobbox.caches.principals`, PRINCIPAL_FALLBACK_SECONDS), so authentication too costs at most
one read per principal per interval, not one per request (DESIGN.md, invariant 6). A cached
value that does not parse is garbage: a miss, replaced, never an "unknown token".

The `Authorization` header is read here and nowhere else: `Token <key>` (the keyword in any
case, as DRF reads it) names a token; any other value is malformed and names nobody, and a
request that carries the header is never authenticated by its session instead.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import Model
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from jobbox import caches, conf, keys
from jobbox.caches import Flights
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import PRINCIPAL_READS

logger = logging.getLogger(__name__)

# A bad token is remembered briefly so a client retrying it does not read the DB each time.
UNKNOWN_TOKEN_TTL_SECONDS = 60
# Longest token key looked up: DRF's keys are 40 hex characters; anything far longer is noise.
TOKEN_MAX_CHARS = 128
_UNKNOWN = "null"
_GARBAGE = object()


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    tenant: str | None
    session_hash: str

    def as_user(self) -> Model:
        """An unsaved-looking User built from the cache: no query to construct or to use."""
        user = get_user_model()(
            pk=self.user_id,
            username=self.username,
            is_active=self.is_active,
            is_staff=self.is_staff,
            is_superuser=self.is_superuser,
        )
        user._state.adding = False
        return user


_principal_fills: "Flights[Principal | None]" = Flights()


def has_authorization_header(request: HttpRequest) -> bool:
    return bool(request.META.get("HTTP_AUTHORIZATION", "").strip())


def token_in_header(request: HttpRequest) -> str | None:
    """The key of a well-formed `Authorization: Token <key>` header, else None."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    key = parts[1]
    if not key.isascii() or not key.isalnum() or len(key) > TOKEN_MAX_CHARS:
        return None
    return key


def principal_for_request(request: Any) -> Principal | None:
    """The principal of a request (Django's or DRF's): from its `Authorization` header if it
    has one, else from its session. Resolved once per request and kept on it."""
    request = getattr(request, "_request", request)  # a DRF Request wraps Django's
    if not hasattr(request, "_jobbox_principal"):
        request._jobbox_principal = _resolve_request(request)
    return request._jobbox_principal


@dataclass(frozen=True, slots=True)
class PrincipalSource:
    """Where a request's principal lives, known before anything is read: the Redis key of its
    token or of its session's user (a hot poll reads it in the same round trip as the job),
    how to fill it on a miss, and the session hash the cached principal must match."""

    key: str
    token: str | None = None
    user_id: int | None = None
    session_hash: str | None = None

    def load(self) -> Principal | None:
        if self.token is not None:
            return _load_token(self.token)
        assert self.user_id is not None
        return _load_user(self.user_id)

    def accept(self, principal: Principal | None) -> Principal | None:
        """The principal, unless the session's hash no longer matches (a password change)."""
        if principal is None or self.session_hash is None:
            return principal
        return principal if constant_time_compare(self.session_hash,
                                                  principal.session_hash) else None


def principal_source(request: HttpRequest) -> PrincipalSource | None:
    """The request's `Authorization` token or session user, or None when it names nobody (no
    credentials, a malformed header, a session without a user)."""
    if has_authorization_header(request):
        token = token_in_header(request)
        return PrincipalSource(keys.token_principal_key(token), token=token) if token else None
    session = getattr(request, "session", None)
    if session is None or SESSION_KEY not in session:
        return None
    try:
        user_id = int(session[SESSION_KEY])
    except (TypeError, ValueError):
        return None
    return PrincipalSource(keys.user_principal_key(user_id), user_id=user_id,
                           session_hash=session.get(HASH_SESSION_KEY, ""))


def adopt_fetched_principal(request: HttpRequest, source: PrincipalSource,
                            raw: bytes | Exception | None) -> Principal | None:
    """The request's principal from `raw`, the value already read at `source.key` in the
    caller's round trip: decoded on a hit, filled on a miss or garbage, exactly as
    `principal_for_request` would; kept on the request so nothing reads it again."""
    request._jobbox_principal = source.accept(  # type: ignore[attr-defined]
        _from_fetched(source.key, raw, source.load))
    return request._jobbox_principal  # type: ignore[attr-defined]


def _resolve_request(request: HttpRequest) -> Principal | None:
    source = principal_source(request)
    return None if source is None else source.accept(_cached(source.key, source.load))


def principal_for_token(token: str) -> Principal | None:
    if not token.isascii() or not token.isalnum() or len(token) > TOKEN_MAX_CHARS:
        return None
    return _cached(keys.token_principal_key(token), lambda: _load_token(token))


def principal_for_user_id(user_id: int) -> Principal | None:
    return _cached(keys.user_principal_key(user_id), lambda: _load_user(user_id))


def _cached(key: str, load: Callable[[], Principal | None]) -> Principal | None:
    try:
        with redis_errors():
            pipe = get_redis().pipeline(transaction=False)
            pipe.get(key)
            # A value of another Redis type comes back as a value, not an outage: garbage.
            (raw,) = pipe.execute(raise_on_error=False)
    except RedisUnavailable:
        # At most one database read per principal per interval in this process, however
        # many requests arrive while Redis is away (DESIGN.md, invariant 6).
        principal, loaded = caches.principals.get_or_load(key, load)
        PRINCIPAL_READS.labels("db_fallback" if loaded else "fallback_cache").inc()
        return principal
    return _from_fetched(key, raw, load)


def _from_fetched(key: str, raw: bytes | Exception | None,
                  load: Callable[[], Principal | None]) -> Principal | None:
    """A principal from the value Redis held at `key`: a hit, else filled from the database."""
    if raw is not None and not isinstance(raw, Exception):
        decoded = _decode(raw)
        if decoded is not _GARBAGE:
            PRINCIPAL_READS.labels("redis").inc()
            return decoded  # type: ignore[return-value]
    if raw is not None:
        logger.warning("jobbox: unreadable cached principal replaced")
    # Threads of this process missing the same principal (after a restart) share one read.
    principal, led = _principal_fills.run(key, load)
    PRINCIPAL_READS.labels("db_fill" if led else "shared").inc()
    ttl = conf.get("PRINCIPAL_TTL_SECONDS") if principal else UNKNOWN_TOKEN_TTL_SECONDS
    value = json.dumps(asdict(principal)) if principal else _UNKNOWN
    try:
        with redis_errors():
            get_redis().set(key, value, ex=ttl)  # SET replaces a value of any type
    except RedisUnavailable:
        pass
    return principal


def _decode(raw: bytes) -> Principal | object | None:
    """The cached principal, None for a remembered unknown token, `_GARBAGE` for anything else."""
    found = _decoded.get(raw, _GARBAGE)
    if found is _GARBAGE:
        found = _parse(raw)
        if found is not _GARBAGE:
            if len(_decoded) >= DECODED_MAX_ENTRIES:
                _decoded.clear()  # bounded whatever is sent; refilled by the next polls
            _decoded[raw] = found
    return found


# The same cached bytes decode to the same (frozen) principal: every poll of a person sends
# the same value, so its JSON is parsed once per process. Keyed by the bytes Redis returned,
# so a changed or deleted principal is never answered from here.
DECODED_MAX_ENTRIES = 10_000
_decoded: dict[bytes, Principal | object | None] = {}


def _parse(raw: bytes) -> Principal | object | None:
    try:
        doc = json.loads(raw)
        if doc is None:
            return None
        principal = Principal(**doc)
    except (ValueError, TypeError):
        return _GARBAGE
    well_formed = (
        type(principal.user_id) is int
        and isinstance(principal.username, str)
        and all(isinstance(flag, bool) for flag in
                (principal.is_active, principal.is_staff, principal.is_superuser))
        and (principal.tenant is None or isinstance(principal.tenant, str))
        and isinstance(principal.session_hash, str)
    )
    return principal if well_formed else _GARBAGE


def _load_token(token: str) -> Principal | None:
    from rest_framework.authtoken.models import Token

    found = Token.objects.select_related("user").filter(key=token).first()
    return _principal_from_user(found.user) if found else None


def _load_user(user_id: int) -> Principal | None:
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    return _principal_from_user(user) if user else None


def _principal_from_user(user: Model) -> Principal:
    resolver = conf.get("TENANT_RESOLVER")
    tenant = import_string(resolver)(user) if resolver else None
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        is_active=user.is_active,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        tenant=None if tenant is None else str(tenant),
        session_hash=user.get_session_auth_hash(),
    )


