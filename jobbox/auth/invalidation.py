"""Cached principals forgotten when what they were built from changes (DESIGN.md, invariant 11).

Signals on the user model, DRF's tokens and the project's membership models
(`JOBBOX["PRINCIPAL_MODELS"]`) delete the cached principals they affect, now and again after
commit. Bulk changes send no signal (`QuerySet.update()`): call `invalidate_user` for each
user they touch.
"""

import logging
from collections.abc import Callable

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Model, signals

from jobbox import caches, conf, keys
from jobbox.client import RedisUnavailable, get_redis, with_retries

logger = logging.getLogger(__name__)


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
        caches.principals.discard(name)  # this process's outage copies, too
    try:
        with_retries(lambda: get_redis().delete(*names), attempts=INVALIDATE_ATTEMPTS,
                     pause_seconds=INVALIDATE_RETRY_PAUSE_SECONDS)
    except RedisUnavailable:
        logger.warning("jobbox: could not invalidate %d cached principals; "
                       "PRINCIPAL_TTL_SECONDS bounds them", len(names))


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
