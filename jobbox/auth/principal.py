"""A principal (who is asking: user, flags, tenant, session) and how Redis holds it.

The fields a request needs, and nothing else, in one-letter keys: every person's principal
repeats them (docs/explanation/redis-layout.md). The previous layout's full field names are
still read (`Principal(**doc)`), so a rolling deploy serves both.
"""

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model

# A principal keeps this much of Django's session auth hash (64 hex characters of an
# HMAC-SHA256): 128 bits tell a session saved before a password change from one after as
# surely as the whole, in half the bytes of every cached principal.
SESSION_HASH_KEPT_CHARS = 32
# The cached principal's fields (`encode_principal`): one letter each, since every person's
# principal repeats them; the three flags as one integer's bits.
_USER_ID, _USERNAME, _FLAGS, _TENANT, _SESSION_HASH, _GENERATION = "u", "n", "a", "t", "h", "g"
_ACTIVE, _STAFF, _SUPERUSER = 1, 2, 4


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    tenant: str | None
    session_hash: str
    # The user's session generation when cached from Redis; None for a token's principal and
    # for one read from the database during an outage (then not checked).
    session_generation: str | None = None

    def __post_init__(self) -> None:
        # Only the kept part of a session hash, however it came (the database, either layout).
        if len(self.session_hash) > SESSION_HASH_KEPT_CHARS:
            object.__setattr__(self, "session_hash", session_hash_kept(self.session_hash))

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


def session_hash_kept(session_hash: str) -> str:
    """The part of a session auth hash a principal keeps and compares."""
    return session_hash[:SESSION_HASH_KEPT_CHARS]


def encode_principal(principal: Principal) -> str:
    """What Redis holds for a principal: what a request needs (who, which flags, which
    tenant, the session hash's kept part), in short fields; `lua/fill_principal.lua` adds
    the user's session generation as `g`. About 90 bytes for a usual user."""
    flags = ((_ACTIVE if principal.is_active else 0) | (_STAFF if principal.is_staff else 0)
             | (_SUPERUSER if principal.is_superuser else 0))
    doc: dict[str, Any] = {_USER_ID: principal.user_id, _USERNAME: principal.username,
                           _FLAGS: flags, _TENANT: principal.tenant,
                           _SESSION_HASH: principal.session_hash}
    if principal.session_generation is not None:
        doc[_GENERATION] = principal.session_generation
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def from_short_fields(doc: dict[str, Any]) -> Principal:
    """A principal as `encode_principal` wrote it (the previous layout's full field names
    are read by `Principal(**doc)`). Raises TypeError or KeyError for anything malformed."""
    flags = doc[_FLAGS]
    if type(flags) is not int:
        raise TypeError("flags")
    return Principal(user_id=doc[_USER_ID], username=doc[_USERNAME],
                     is_active=bool(flags & _ACTIVE), is_staff=bool(flags & _STAFF),
                     is_superuser=bool(flags & _SUPERUSER), tenant=doc[_TENANT],
                     session_hash=doc[_SESSION_HASH], session_generation=doc.get(_GENERATION))


def is_short_layout(doc: dict[str, Any]) -> bool:
    """Whether a decoded principal document is in this layout (not the previous one)."""
    return _USER_ID in doc
