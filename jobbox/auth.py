"""Who is asking, at zero SQL per request (DESIGN.md, invariant 1 and "Authentication").

Django's session auth and DRF's token auth each read the database on every request. Here a
token or a session resolves to a `Principal` (user and tenant) cached in Redis, filled from
the database on a miss and deleted by signals whenever the token, the user or the user's
membership changes. Sessions themselves live in signed cookies (no store to read); the
cookie's session hash is checked against the cached one, so a password change still ends
old sessions.

While Redis is unavailable, principals come from the database through a per-process cache
(`jobbox.localcache`, PRINCIPAL_FALLBACK_SECONDS), so authentication too costs at most one
read per principal per interval, not one per request (DESIGN.md, invariant 6). A cached
value that does not parse is garbage: a miss, replaced, never an "unknown token".
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.apps import apps
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import transaction
from django.db.models import Model, signals
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from rest_framework import authentication, exceptions

from jobbox import conf, keys
from jobbox.client import RedisUnavailable, breaker_bypassed, get_redis, redis_errors
from jobbox.localcache import FallbackCache
from jobbox.metrics import PRINCIPAL_READS
from jobbox.singleflight import Flights

logger = logging.getLogger(__name__)

# A bad token is remembered briefly so a client retrying it does not read the DB each time.
UNKNOWN_TOKEN_TTL_SECONDS = 60
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
        user._jobbox_principal = self
        return user


# Principals (None: unknown) read from the database while Redis is unavailable, by cache key.
_fallback_principals: "FallbackCache[Principal | None]" = FallbackCache(
    "PRINCIPAL_FALLBACK_SECONDS"
)


_principal_fills: "Flights[Principal | None]" = Flights()


def principal_of(user: object) -> Principal | None:
    return getattr(user, "_jobbox_principal", None)


def principal_for_request(request: HttpRequest) -> Principal | None:
    """The request's principal from its `Authorization: Token` header or its session; memoized."""
    if not hasattr(request, "_jobbox_principal"):
        request._jobbox_principal = _resolve_request(request)
    return request._jobbox_principal


def _resolve_request(request: HttpRequest) -> Principal | None:
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(header) == 2 and header[0].lower() == "token":
        return principal_for_token(header[1])
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


def principal_for_token(token: str) -> Principal | None:
    if not token.isascii() or not token.isalnum() or len(token) > 128:
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
        principal, loaded = _fallback_principals.get_or_load(key, load)
        PRINCIPAL_READS.labels("db_fallback" if loaded else "fallback_cache").inc()
        return principal
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


# --- DRF authentication classes -------------------------------------------------------------


class CachedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, resolved through the principal cache."""

    def authenticate(self, request):  # noqa: ANN001, ANN201 - DRF's signature
        if authentication.get_authorization_header(request).split()[:1] != [b"Token"]:
            return None
        principal = principal_for_request(request._request)
        if principal is None or not principal.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return principal.as_user(), None


class CachedSessionAuthentication(authentication.SessionAuthentication):
    """Session login (the web page), resolved through the principal cache; CSRF enforced."""

    def authenticate(self, request):  # noqa: ANN001, ANN201 - DRF's signature
        principal = principal_for_request(request._request)
        if principal is None or not principal.is_active:
            return None
        self.enforce_csrf(request)
        return principal.as_user(), None


# --- Invalidation ---------------------------------------------------------------------------


def invalidate_user(user_id: int) -> None:
    """Forget a user's cached principal and their tokens', now and again after commit."""
    keys_to_delete = [keys.user_principal_key(user_id)]
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        tokens = Token.objects.filter(user_id=user_id).values_list("key", flat=True)
        keys_to_delete += [keys.token_principal_key(t) for t in tokens]
    _delete_now_and_on_commit(keys_to_delete)


def invalidate_token(token: str) -> None:
    _delete_now_and_on_commit([keys.token_principal_key(token)])


def _delete_now_and_on_commit(names: list[str]) -> None:
    # Now, so this transaction's own reads see the change; after commit, so a concurrent
    # request that re-cached the old row in between is corrected.
    _delete(names)
    transaction.on_commit(lambda: _delete(names))


# Invalidations are rare and matter for security: tried this often whatever the breaker says.
INVALIDATE_ATTEMPTS = 3
INVALIDATE_RETRY_PAUSE_SECONDS = 0.05


def _delete(names: list[str]) -> None:
    for name in names:
        _fallback_principals.discard(name)  # this process's outage copies, too
    for attempt in range(1, INVALIDATE_ATTEMPTS + 1):
        try:
            with breaker_bypassed(), redis_errors():
                get_redis().delete(*names)
            return
        except RedisUnavailable:
            if attempt < INVALIDATE_ATTEMPTS:
                time.sleep(INVALIDATE_RETRY_PAUSE_SECONDS * attempt)
    logger.warning("jobbox: could not invalidate %d cached principals; PRINCIPAL_TTL_SECONDS "
                   "bounds them", len(names))


def connect_invalidation_signals() -> None:
    def on_user_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_user(instance.pk)

    def on_member_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_user(instance.user_id)

    def on_token_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_token(instance.key)

    watched: list[tuple[type[Model], Callable[..., None]]] = [
        (get_user_model(), on_user_change),
        *((apps.get_model(name), on_member_change) for name in conf.get("PRINCIPAL_MODELS")),
    ]
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        watched.append((Token, on_token_change))
    for model, handler in watched:
        for signal in (signals.post_save, signals.post_delete):
            signal.connect(handler, sender=model, weak=False,
                           dispatch_uid=f"jobbox-principal-{model._meta.label}-{id(signal)}")
