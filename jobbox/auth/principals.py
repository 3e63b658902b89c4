"""Who is asking, at zero SQL per request (DESIGN.md, invariant 1 and "Authentication").

Django's session auth and DRF's token auth each read the database on every request. Here a
token or a session resolves to a `Principal` (user and tenant) cached in Redis, filled from
the database on a miss and deleted whenever the token, the user or the user's membership
changes (`jobbox.auth.invalidation`). Sessions themselves live in signed cookies (no store
to read); the cookie's session hash is checked against the cached one, so a password change
still ends old sessions.

While Redis is unavailable, principals come from the database through a per-process cache
(`jobbox.caches.principals`), refreshed in batches: one query for every token (and one for
every user) this process served recently, per PRINCIPAL_FALLBACK_SECONDS, not one per
principal or per request (DESIGN.md, invariant 6). A cached
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


def _resolve_request(request: HttpRequest) -> Principal | None:
    if has_authorization_header(request):
        token = token_in_header(request)
        return principal_for_token(token) if token else None
    session = getattr(request, "session", None)
    if session is None or SESSION_KEY not in session:
        return None
    try:
        principal = principal_for_user_id(int(session[SESSION_KEY]))
    except (TypeError, ValueError):
        return None
    if principal and constant_time_compare(session.get(HASH_SESSION_KEY, ""),
                                           principal.session_hash):
        return principal
    return None


class _Named(str):
    """A principal's cache key name that also carries what it names (a token, a user id), so
    an outage batch can read every principal it refreshes; equal to (and discarded as) the
    plain name."""

    ident: Any

    def __new__(cls, name: str, ident: Any) -> "_Named":
        named = super().__new__(cls, name)
        named.ident = ident
        return named


def principal_for_token(token: str) -> Principal | None:
    if not token.isascii() or not token.isalnum() or len(token) > TOKEN_MAX_CHARS:
        return None
    return _cached(_Named(keys.token_principal_key(token), token), lambda: _load_token(token))


def principal_for_user_id(user_id: int) -> Principal | None:
    return _cached(_Named(keys.user_principal_key(user_id), int(user_id)),
                   lambda: _load_user(user_id))


def _cached(key: _Named, load: Callable[[], Principal | None]) -> Principal | None:
    try:
        with redis_errors():
            pipe = get_redis().pipeline(transaction=False)
            pipe.get(key)
            # A value of another Redis type comes back as a value, not an outage: garbage.
            (raw,) = pipe.execute(raise_on_error=False)
    except RedisUnavailable:
        return _from_fallback(key)
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


def _from_fallback(key: _Named) -> Principal | None:
    """Redis unavailable: this process's copy, refreshed with every token (or user) asked for
    here recently in one query per PRINCIPAL_FALLBACK_SECONDS (DESIGN.md, invariant 6)."""
    is_token = isinstance(key.ident, str)
    principal, queried = caches.principals.get(
        key, group="token" if is_token else "user",
        load_many=_load_tokens if is_token else _load_users)
    PRINCIPAL_READS.labels("db_fallback" if queried else "fallback_cache").inc()
    return principal  # type: ignore[no-any-return]


def _load_tokens(names: list[_Named]) -> dict[_Named, Principal]:
    """The principals of many tokens: one query for tokens with their users, one for tenants."""
    from rest_framework.authtoken.models import Token

    by_token = {name.ident: name for name in names}
    found = list(Token.objects.select_related("user").filter(key__in=list(by_token)))
    principals = _principals_from_users([token.user for token in found])
    return {by_token[token.key]: principals[token.user.pk] for token in found}


def _load_users(names: list[_Named]) -> dict[_Named, Principal]:
    by_id = {name.ident: name for name in names}
    users = list(get_user_model()._default_manager.filter(pk__in=list(by_id)))
    principals = _principals_from_users(users)
    return {by_id[user.pk]: principals[user.pk] for user in users}


def _principals_from_users(users: list[Model]) -> dict[Any, Principal]:
    """Principals of many users; their tenants in one call when TENANT_RESOLVER_MANY is set."""
    resolver_many = conf.get("TENANT_RESOLVER_MANY")
    if not resolver_many:
        return {user.pk: _principal_from_user(user) for user in users}
    tenants = import_string(resolver_many)(users) if users else {}
    return {user.pk: _principal_from_user(user, tenant=tenants.get(user.pk)) for user in users}


def _decode(raw: bytes) -> Principal | object | None:
    """The cached principal, None for a remembered unknown token, `_GARBAGE` for anything else."""
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


_UNRESOLVED: Any = object()


def _principal_from_user(user: Model, *, tenant: Any = _UNRESOLVED) -> Principal:
    if tenant is _UNRESOLVED:
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


