"""Who is asking, at zero SQL per request (docs/explanation/invariants.md,
invariant 1).

Django's session auth and DRF's token auth each read the database on every request. Here a
token or a session resolves to a `Principal` (user and tenant) cached in Redis, filled from
the database on a miss and deleted whenever the token, the user or the user's membership
changes (`jobbox.auth.invalidation`). Sessions themselves live in signed cookies (no store
to read); the cookie's session hash is checked against the cached one, so a password change
still ends old sessions.

While Redis is unavailable, principals come from the database through a per-process cache
(`jobbox.caches.principals`), refreshed in batches: one query for every token (and one for
every user) this process served recently, per PRINCIPAL_OUTAGE_COPY_SECONDS, not one per
principal or per request (docs/explanation/invariants.md, invariant 6). A cached
value that does not parse is garbage: a miss, replaced, never an "unknown token".

Revocation sticks (docs/explanation/invariants.md, invariant 11): an invalidation writes a
short-lived revocation mark over a principal's key instead of deleting it, and a fill stores
what it read only if the key still holds what the fill saw before reading the database
(`lua/fill_principal.lua`), so a fill racing an invalidation cannot re-cache the revoked
principal. A user's principal carries the user's session generation
(`auth:user:{id}:sessions`): login writes it into the session, logout replaces it, so a
session saved before logout (a copied cookie) ends too. Unknown tokens are not remembered
(no key per bogus token); `token_misses` bounds the database reads they cost.

The `Authorization` header is read here and nowhere else: `Token <key>` (the keyword in any
case, as DRF reads it) names a token; any other value is malformed and names nobody, and a
request that carries the header is never authenticated by its session instead.
"""

import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import Model
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from jobbox import caches, conf, keys
from jobbox.auth import token_misses
from jobbox.auth.principal import (
    Principal,
    encode_principal,
    from_short_fields,
    is_short_layout,
    session_hash_kept,
)
from jobbox.caches import Flights
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.metrics import PRINCIPAL_READS
from jobbox.scripts import script

logger = logging.getLogger(__name__)

# Longest token key looked up: DRF's keys are 40 hex characters; anything far longer is noise.
TOKEN_MAX_CHARS = 128
# A revocation mark stands this long: far longer than any fill's database read (ms), so every
# fill that read before the invalidation finds the mark still there and stores nothing.
REVOCATION_MARK_SECONDS = 60
# A fill slower than this stores nothing (its answer still serves its own request): the mark
# it must see has then possibly expired. Half the mark's life leaves a wide margin.
FILL_MAX_SECONDS = REVOCATION_MARK_SECONDS / 2
# The session key holding the user's session generation at login.
SESSION_GENERATION_KEY = "_jobbox_session_generation"
# A principal's TTL varies by up to this fraction either way (+-10 % of 5 min is +-30 s):
# enough to spread refills filled in the same second over a minute, small enough that the
# TTL still bounds a missed revocation by about PRINCIPAL_TTL_SECONDS.
PRINCIPAL_TTL_JITTER_FRACTION = 0.1
_GARBAGE = object()
_REVOKED = object()
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


class _Named(str):
    """A principal's cache key name that also carries what it names (a token, a user id), so
    an outage batch can read every principal it refreshes; equal to (and discarded as) the
    plain name."""

    ident: Any

    def __new__(cls, name: str, ident: Any) -> "_Named":
        named = super().__new__(cls, name)
        named.ident = ident
        return named


@dataclass(frozen=True, slots=True)
class PrincipalSource:
    """Where a request's principal lives, known before anything is read: the Redis key of its
    token or of its session's user (a hot poll reads it in the same round trip as the job),
    how to fill it on a miss, and what the cached principal must match (the session's hash
    and generation)."""

    key: "_Named"
    token: str | None = None
    address: str = "unknown"  # charged when the token names nobody (token_misses)
    user_id: int | None = None
    session_hash: str | None = None
    session_generation: object = None

    @property
    def generation_key(self) -> str | None:
        return None if self.user_id is None else keys.session_generation_key(self.user_id)

    def load(self) -> Principal | None:
        if self.token is not None:
            return _load_token(self.token, self.address)
        assert self.user_id is not None
        return _load_user(self.user_id)

    def accept(self, principal: Principal | None) -> Principal | None:
        """The principal, unless the session no longer matches it (a password change, a
        logout since the session was saved)."""
        if principal is None or self.user_id is None or self.token is not None:
            return principal
        matches = (constant_time_compare(session_hash_kept(self.session_hash or ""),
                                         principal.session_hash)
                   and same_session_generation(self.session_generation, principal))
        return principal if matches else None


def principal_source(request: HttpRequest) -> PrincipalSource | None:
    """The request's `Authorization` token or session user, or None when it names nobody (no
    credentials, a malformed header, a session without a user)."""
    if has_authorization_header(request):
        token = token_in_header(request)
        if not token:
            return None
        return PrincipalSource(_Named(keys.token_principal_key(token), token), token=token,
                               address=token_misses.client_address(request))
    session = getattr(request, "session", None)
    if session is None or SESSION_KEY not in session:
        return None
    try:
        user_id = int(session[SESSION_KEY])
    except (TypeError, ValueError):
        return None
    return PrincipalSource(_Named(keys.user_principal_key(user_id), int(user_id)),
                           user_id=user_id,
                           session_hash=session.get(HASH_SESSION_KEY, ""),
                           session_generation=session.get(SESSION_GENERATION_KEY))


def adopt_fetched_principal(request: HttpRequest, source: PrincipalSource,
                            raw: bytes | Exception | None) -> Principal | None:
    """The request's principal from `raw`, the value already read at `source.key` in the
    caller's round trip: decoded on a hit, filled on a miss, a mark or garbage, exactly as
    `principal_for_request` would; kept on the request so nothing reads it again."""
    request._jobbox_principal = source.accept(  # type: ignore[attr-defined]
        _from_fetched(source.key, raw, source.load, generation_key=source.generation_key))
    return request._jobbox_principal  # type: ignore[attr-defined]


def _resolve_request(request: HttpRequest) -> Principal | None:
    source = principal_source(request)
    if source is None:
        return None
    return source.accept(_cached(source.key, source.load, generation_key=source.generation_key))


def same_session_generation(in_session: object, principal: Principal) -> bool:
    if principal.session_generation is None:
        return True  # read from the database while Redis is away: no generation to compare
    return isinstance(in_session, str) and constant_time_compare(in_session,
                                                                 principal.session_generation)


def principal_for_token(token: str, *, address: str = "unknown") -> Principal | None:
    """The token's principal; `address` is charged when the token names nobody."""
    if not token.isascii() or not token.isalnum() or len(token) > TOKEN_MAX_CHARS:
        return None
    source = PrincipalSource(_Named(keys.token_principal_key(token), token), token=token,
                             address=address)
    return _cached(source.key, source.load)


def principal_for_user_id(user_id: int) -> Principal | None:
    source = PrincipalSource(_Named(keys.user_principal_key(user_id), int(user_id)),
                             user_id=user_id)
    return _cached(source.key, source.load, generation_key=source.generation_key)


def _cached(key: "_Named", load: Callable[[], Principal | None], *,
            generation_key: str | None = None) -> Principal | None:
    try:
        with redis_errors():
            pipe = get_redis().pipeline(transaction=False)
            pipe.get(key)
            # A value of another Redis type comes back as a value, not an outage: garbage.
            (raw,) = pipe.execute(raise_on_error=False)
    except RedisUnavailable:
        return _from_fallback(key)
    return _from_fetched(key, raw, load, generation_key=generation_key)


def _from_fetched(key: str, raw: bytes | Exception | None,
                  load: Callable[[], Principal | None], *,
                  generation_key: str | None = None) -> Principal | None:
    """A principal from the value Redis held at `key`: a hit, else filled from the database
    (a miss, a revocation mark, garbage)."""
    if raw is not None and not isinstance(raw, Exception):
        decoded = _decode(raw)
        if isinstance(decoded, Principal):
            PRINCIPAL_READS.labels("redis").inc()
            return decoded
        if decoded is _GARBAGE:
            logger.warning("jobbox: unreadable cached principal replaced")
    return fill_principal(key, load, seen=raw, generation_key=generation_key)


def fill_principal(key: str, load: Callable[[], Principal | None], *, seen: object,
                   generation_key: str | None = None) -> Principal | None:
    """A missed principal read from the database and stored, unless the key changed since the
    caller read `seen` there (bytes, None for nothing, an exception for another type): the
    read must come before the database read, so an invalidation in between wins. Threads of
    this process missing the same principal share one read; only the leader, whose `seen`
    precedes that read, stores it."""
    principal, led = _principal_fills.run(
        key, lambda: _load_and_store(key, load, seen=seen, generation_key=generation_key))
    PRINCIPAL_READS.labels("db_fill" if led else "shared").inc()
    return principal


def _from_fallback(key: _Named) -> Principal | None:
    """Redis unavailable: this process's copy, refreshed with every token (or user) asked for
    here recently in one query per PRINCIPAL_OUTAGE_COPY_SECONDS (invariant 6)."""
    is_token = isinstance(key.ident, str)
    principal, queried = caches.principals.get(
        key, group="token" if is_token else "user",
        load_many=_load_tokens if is_token else _load_users)
    PRINCIPAL_READS.labels("db_fallback" if queried else "outage_copy").inc()
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
    resolver_many = conf.settings().TENANT_RESOLVER_MANY
    if not resolver_many:
        return {user.pk: _principal_from_user(user) for user in users}
    tenants = import_string(resolver_many)(users) if users else {}
    return {user.pk: _principal_from_user(user, tenant=tenants.get(user.pk)) for user in users}


def _load_and_store(key: str, load: Callable[[], Principal | None], *, seen: object,
                    generation_key: str | None) -> Principal | None:
    started = time.monotonic()
    principal = load()
    if principal is None:
        return None  # unknown: not remembered (token_misses bounds what that costs)
    if time.monotonic() - started > FILL_MAX_SECONDS:
        return principal  # any revocation mark may have expired meanwhile: store nothing
    try:
        stored, generation = _store_if_unchanged(key, principal, seen, generation_key)
    except RedisUnavailable:
        return principal
    if not stored:
        PRINCIPAL_READS.labels("fill_refused").inc()
    if generation_key is None:
        return principal
    return Principal(**{**asdict(principal), "session_generation": generation})


def _store_if_unchanged(key: str, principal: Principal, seen: object,
                        generation_key: str | None) -> tuple[bool, str]:
    """KEYS and ARGV as `lua/fill_principal.lua` documents them. Raises RedisUnavailable."""
    if seen is None:
        seen_kind, seen_value = "none", b""
    elif isinstance(seen, bytes):
        seen_kind, seen_value = "value", seen
    else:
        seen_kind, seen_value = "other", b""
    with redis_errors():
        stored, generation = script("fill_principal", get_redis())(
            keys=[key] if generation_key is None else [key, generation_key],
            args=[encode_principal(principal), principal_ttl_seconds(),
                  seen_kind, seen_value, new_generation(), session_generation_ttl_seconds()],
        )
    return bool(stored), generation.decode() if isinstance(generation, bytes) else generation


def principal_ttl_seconds() -> int:
    """PRINCIPAL_TTL_SECONDS, give or take PRINCIPAL_TTL_JITTER_FRACTION: principals filled
    together (a school's class signing in at 9:00, every token after a Redis restart) expire
    spread over a minute instead of all missing, and all reading the database, at once."""
    ttl = conf.settings().PRINCIPAL_TTL_SECONDS
    spread = ttl * PRINCIPAL_TTL_JITTER_FRACTION
    return max(1, round(ttl + random.uniform(-spread, spread)))


def new_generation() -> str:
    # 96 random bits: no session guesses another's, in 16 characters (stored twice a user:
    # in the generation key and in the cached principal).
    return secrets.token_urlsafe(12)


def session_generation_ttl_seconds() -> int:
    # A session cookie is refused by Django past this age: its generation is needed as long.
    return int(settings.SESSION_COOKIE_AGE)


def revocation_mark() -> str:
    """A value no principal decodes to, unique per write, so a fill that saw an older mark
    (or none) notices this one."""
    return json.dumps({"revoked": uuid.uuid4().hex})


# The same cached bytes decode to the same (frozen) principal: every poll of a person sends
# the same value, so its JSON is parsed once per process. Keyed by the bytes Redis returned,
# so a changed or revoked principal is never answered from here.
DECODED_MAX_ENTRIES = 10_000
_decoded: dict[bytes, Principal] = {}


def _decode(raw: bytes) -> Principal | object:
    """The cached principal, `_REVOKED` for a revocation mark, `_GARBAGE` for anything else."""
    found = _decoded.get(raw)
    if found is not None:
        return found
    parsed = _parse(raw)
    if isinstance(parsed, Principal):
        if len(_decoded) >= DECODED_MAX_ENTRIES:
            _decoded.clear()  # bounded whatever is sent; refilled by the next polls
        _decoded[raw] = parsed
    return parsed


def decode_principal(raw: bytes) -> Principal | None:
    """A cached principal (either layout); None for a revocation mark or garbage."""
    found = _decode(raw)
    return found if isinstance(found, Principal) else None


def _parse(raw: bytes) -> Principal | object:
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict) and set(doc) == {"revoked"}:
            return _REVOKED
        principal = from_short_fields(doc) if is_short_layout(doc) else Principal(**doc)
    except (ValueError, TypeError, KeyError):
        return _GARBAGE
    well_formed = (
        type(principal.user_id) is int
        and isinstance(principal.username, str)
        and all(isinstance(flag, bool) for flag in
                (principal.is_active, principal.is_staff, principal.is_superuser))
        and (principal.tenant is None or isinstance(principal.tenant, str))
        and isinstance(principal.session_hash, str)
        and (principal.session_generation is None
             or isinstance(principal.session_generation, str))
    )
    return principal if well_formed else _GARBAGE


def _load_token(token: str, address: str) -> Principal | None:
    from rest_framework.authtoken.models import Token

    digest = keys.token_principal_key(token)  # the token's digest, never the token itself
    if not token_misses.budget.may_look_up(address, digest):
        PRINCIPAL_READS.labels("miss_budget_spent").inc()
        return None  # a known miss, or bogus tokens already cost every read allowed
    found = Token.objects.select_related("user").filter(key=token).first()
    if found is None:
        token_misses.budget.spend(address, digest)
        return None
    return _principal_from_user(found.user)


def _load_user(user_id: int) -> Principal | None:
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    return _principal_from_user(user) if user else None


_UNRESOLVED: Any = object()


def _principal_from_user(user: Model, *, tenant: Any = _UNRESOLVED) -> Principal:
    if tenant is _UNRESOLVED:
        resolver = conf.settings().TENANT_RESOLVER
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


