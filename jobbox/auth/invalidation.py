"""Cached principals revoked when what they were built from changes (docs/explanation/
invariants.md, invariant 11).

Signals on the user model, DRF's tokens and the project's membership models
(`JOBBOX["PRINCIPAL_MODELS"]`) revoke the cached principals they affect, now and again after
commit. Revoking writes a short-lived mark over the principal's key (never a bare delete), so
a fill that read the database before the change stores nothing (`lua/fill_principal.lua`).

Bulk changes send no signal (`QuerySet.update()`, raw SQL, a data migration): after one that
touches users, their tokens or their memberships, call `invalidate_users(ids)` with the ids
of the users it touched (docs/how-to/revocation.md). Logout (`user_logged_out`) replaces the user's
session generation, ending every session saved before it; login (`user_logged_in`) writes
the standing generation into the new session.
"""

import logging
from collections.abc import Callable, Iterable
from itertools import islice

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out
from django.db import transaction
from django.db.models import Model, signals
from django.http import HttpRequest

from jobbox import caches, conf, keys, pending
from jobbox.auth.principals import (
    REVOCATION_MARK_SECONDS,
    SESSION_GENERATION_KEY,
    new_generation,
    revocation_mark,
    session_generation_ttl_seconds,
)
from jobbox.client import RedisUnavailable, get_redis, redis_errors, with_retries
from jobbox.scripts import script

logger = logging.getLogger(__name__)

# Users whose tokens one query reads (and whose marks one pipeline writes) in a bulk call.
INVALIDATE_BATCH_USERS = 1000


def invalidate_user(user_id: int) -> None:
    """Revoke a user's cached principal and their tokens', now and again after commit."""
    invalidate_users([user_id])


def invalidate_users(user_ids: Iterable[int]) -> None:
    """Revoke the cached principals of these users and of their tokens, now and again after
    commit: call it after a bulk change that sends no signal (`QuerySet.update()` of users,
    tokens or memberships), e.g. `invalidate_users(users.values_list("pk", flat=True))`.
    One query and one Redis round trip per `INVALIDATE_BATCH_USERS` users."""
    ids = iter(user_ids)
    while batch := [int(user_id) for user_id in islice(ids, INVALIDATE_BATCH_USERS)]:
        names = [keys.user_principal_key(user_id) for user_id in batch]
        if apps.is_installed("rest_framework.authtoken"):
            from rest_framework.authtoken.models import Token

            tokens = Token.objects.filter(user_id__in=batch).values_list("key", flat=True)
            names += [keys.token_principal_key(token) for token in tokens]
        _revoke_now_and_on_commit(names)


def invalidate_token(token: str) -> None:
    _revoke_now_and_on_commit([keys.token_principal_key(token)])


def _revoke_now_and_on_commit(names: list[str]) -> None:
    # Recorded with the change (jobbox.pending), so it is replayed if Redis misses it. Now,
    # so this transaction's own reads see the change; after commit, with a new mark, so a
    # fill that read the old row in between (the mark of "now" already there) stores nothing.
    row = pending.record(pending.REVOKE, {"names": names})
    _revoke(names)
    transaction.on_commit(lambda: _revoke(names, row))


# Invalidations are rare and matter for security: tried this often whatever the breaker says.
INVALIDATE_ATTEMPTS = 3
INVALIDATE_RETRY_PAUSE_SECONDS = 0.05


def _revoke(names: list[str], row: int | None = None) -> None:
    for name in names:
        caches.principals.discard(name)  # this process's outage copies, too
    try:
        write_revocation_marks(names)
    except RedisUnavailable:
        logger.warning("jobbox: could not revoke %d cached principals now; recorded, they "
                       "are revoked when Redis answers", len(names))
        return
    pending.applied(row)


def write_revocation_marks(names: list[str]) -> None:
    """A revocation mark over each principal key. Raises RedisUnavailable."""
    def write_marks() -> None:
        with redis_errors():
            pipe = get_redis().pipeline(transaction=False)  # single-key commands: any slot
            for name in names:
                pipe.set(name, revocation_mark(), ex=REVOCATION_MARK_SECONDS)
            pipe.execute()

    with_retries(write_marks, attempts=INVALIDATE_ATTEMPTS,
                 pause_seconds=INVALIDATE_RETRY_PAUSE_SECONDS)


def session_generation(user_id: int, *, logout: bool) -> str:
    """The user's session generation standing after a login (kept) or a logout (replaced,
    with the cached principal marked revoked). KEYS and ARGV as `lua/session_generation.lua`
    documents them. Raises RedisUnavailable."""
    with redis_errors():
        generation = script("session_generation", get_redis())(
            keys=[keys.session_generation_key(user_id), keys.user_principal_key(user_id)],
            args=["logout" if logout else "login", new_generation(),
                  session_generation_ttl_seconds(), revocation_mark(), REVOCATION_MARK_SECONDS],
        )
    return generation.decode() if isinstance(generation, bytes) else str(generation)


def on_login(sender: object, request: HttpRequest | None, user: Model, **_: object) -> None:
    if getattr(request, "session", None) is None:
        return  # a login without a session (an API's own) has no cookie to end
    assert request is not None
    try:
        request.session[SESSION_GENERATION_KEY] = session_generation(user.pk, logout=False)
    except RedisUnavailable:
        # The session carries no generation and is refused once Redis is back: the user
        # logs in again (fail closed rather than a session logout could not end).
        logger.warning("jobbox: session of user %s started without a generation", user.pk)


def on_logout(sender: object, request: HttpRequest, user: Model | None, **_: object) -> None:
    if user is None or user.pk is None:
        return
    try:
        end_sessions(user.pk)
    except RedisUnavailable:
        pending.record(pending.LOGOUT, {"user_id": user.pk})
        logger.warning("jobbox: logout of user %s recorded; their other sessions end when "
                       "Redis answers", user.pk)


def end_sessions(user_id: int) -> None:
    """Replace the user's session generation (every session saved before ends). Raises
    RedisUnavailable."""
    with_retries(lambda: session_generation(user_id, logout=True),
                 attempts=INVALIDATE_ATTEMPTS, pause_seconds=INVALIDATE_RETRY_PAUSE_SECONDS)


pending.register_operation(
    pending.REVOKE, lambda arguments: write_revocation_marks(arguments["names"]))
pending.register_operation(
    pending.LOGOUT, lambda arguments: end_sessions(int(arguments["user_id"])))


def connect_invalidation_signals() -> None:
    def on_user_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_user(instance.pk)

    def on_member_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_user(instance.user_id)

    def on_token_change(sender: type[Model], instance: Model, **_: object) -> None:
        invalidate_token(instance.key)

    watched: list[tuple[type[Model], Callable[..., None]]] = [
        (get_user_model(), on_user_change),
        *((apps.get_model(name), on_member_change) for name in conf.settings().PRINCIPAL_MODELS),
    ]
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        watched.append((Token, on_token_change))
    for model, handler in watched:
        for signal in (signals.post_save, signals.post_delete):
            signal.connect(handler, sender=model, weak=False,
                           dispatch_uid=f"jobbox-principal-{model._meta.label}-{id(signal)}")
    user_logged_in.connect(on_login, dispatch_uid="jobbox-session-login")
    user_logged_out.connect(on_logout, dispatch_uid="jobbox-session-logout")
