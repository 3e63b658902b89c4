"""Every Redis key name jobbox uses, built here and nowhere else (docs/explanation/
redis-layout.md).

The seed's braces are literal: `video:{42}:status` and `job:video:{42}:progress` share the
hash tag `{42}`, so a job's status and progress live in one Redis Cluster slot and one
round trip reads both. Anything that came from a request is validated before it becomes
part of a key.
"""

import hashlib
import re
from functools import lru_cache

from jobbox import conf

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)*$")


class InvalidKeyPart(ValueError):
    """A value that must not become part of a Redis key name."""


def _checked_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise InvalidKeyPart("job id")
    return job_id


def _checked_namespace(namespace: str) -> str:
    if not _NAMESPACE.match(namespace):
        raise InvalidKeyPart("namespace")
    return namespace


def _job_key(namespace: str, job_id: str, suffix: str) -> str:
    prefix = conf.settings().KEY_PREFIX
    return f"{prefix}{_checked_namespace(namespace)}:{{{_checked_id(job_id)}}}:{suffix}"


def status_key(namespace: str, job_id: str) -> str:
    """`video:{42}:status` (namespace "video"), `job:{ab12}:status` (namespace "job")."""
    return _job_key(namespace, job_id, "status")


def progress_key(namespace: str, job_id: str) -> str:
    """`job:video:{42}:progress` (namespace "job:video"), `job:{ab12}:progress`."""
    return _job_key(namespace, job_id, "progress")


def missing_key(namespace: str, job_id: str) -> str:
    """`video:{42}:missing`: a negative entry, the id named no job when last read."""
    return _job_key(namespace, job_id, "missing")


def deleted_key(namespace: str, job_id: str) -> str:
    """`video:{42}:deleted`: the job's row was deleted; no snapshot of it may be stored again
    (a fill that read the row just before the delete would otherwise bring it back)."""
    return _job_key(namespace, job_id, "deleted")


def fill_lease_key(namespace: str, job_id: str) -> str:
    """`video:{42}:filling`: held by the one reader filling the snapshot from the database."""
    return _job_key(namespace, job_id, "filling")


def cancel_key(namespace: str, job_id: str) -> str:
    """`video:{42}:cancel`: set when someone asked the running job to stop; its worker reads it
    at each progress report (`report_progress.lua`) or by a check (jobbox.control)."""
    return _job_key(namespace, job_id, "cancel")


def log_key(namespace: str, job_id: str) -> str:
    """`video:{42}:log`: the job's own log lines while it runs, oldest first (bounded)."""
    return _job_key(namespace, job_id, "log")


def log_bytes_key(namespace: str, job_id: str) -> str:
    """`video:{42}:log:bytes`: the size of the lines `log_key` holds, for its byte bound."""
    return _job_key(namespace, job_id, "log:bytes")


# Each active token is hashed once per process, not on every poll; bounded, so a scan of
# random tokens only evicts (a miss re-hashes, ~1 us).
@lru_cache(maxsize=4096)
def _digest(secret: str) -> str:
    # Secrets never appear in key names: a KEYS or MONITOR must not leak a token.
    return hashlib.sha256(secret.encode()).hexdigest()


def token_principal_key(token: str) -> str:
    return f"{conf.settings().KEY_PREFIX}auth:token:{_digest(token)}"


def user_principal_key(user_id: int | str) -> str:
    """`auth:user:{42}`: a user's cached principal; its braces share a slot with the user's
    session generation, so one script fills the one with the other."""
    return f"{conf.settings().KEY_PREFIX}auth:user:{{{int(user_id)}}}"


def session_generation_key(user_id: int | str) -> str:
    """`auth:user:{42}:sessions`: the generation every live session of the user carries;
    logout replaces it, ending every session saved before."""
    return f"{conf.settings().KEY_PREFIX}auth:user:{{{int(user_id)}}}:sessions"


def _owner_key(tenant: str, owner: str, suffix: str) -> str:
    # `{tenant:owner}` is the hash tag: every key of one person lives in one cluster slot,
    # so one script can update a person's index, history and notification together.
    return (f"{conf.settings().KEY_PREFIX}jobbox:{{{_checked_id(tenant)}:{_checked_id(owner)}}}"
            f":{suffix}")


def box_index_key(tenant: str, owner: str) -> str:
    """`jobbox:{t1:7}:index`: one person's job box, a sorted set of job references by last
    change."""
    return _owner_key(tenant, owner, "index")


def owner_events_key(tenant: str, owner: str) -> str:
    """`jobbox:{t1:7}:events`: one person's bounded event history (a Redis stream; its entry
    ids are the event ids a client resumes from)."""
    return _owner_key(tenant, owner, "events")


def owner_channel(tenant: str, owner: str) -> str:
    """`jobbox:{t1:7}:notify`: the (sharded) pub/sub channel that tells the processes
    streaming to this person that their history grew."""
    return _owner_key(tenant, owner, "notify")


def owner_streams_key(tenant: str, owner: str) -> str:
    """`jobbox:{t1:7}:streams`: the person's open streams (sorted set of stream ids scored
    by lease expiry, ms), counted across processes for the per-person cap."""
    return _owner_key(tenant, owner, "streams")


def box_member(kind: str, job_id: str) -> str:
    """A box index's reference to a job: its kind and id, tab-separated. The box's read
    script builds the job's key names from them (`job_key_parts`)."""
    return f"{kind}\t{_checked_id(job_id)}"


def previous_box_member(kind: str, job_id: str, *, status_namespace: str,
                        progress_namespace: str) -> str:
    """The reference the previous layout wrote: kind, id and the job's two key names. Still
    read; replaced by `box_member` at the job's next change."""
    return "\t".join([kind, job_id, status_key(status_namespace, job_id),
                      progress_key(progress_namespace, job_id)])


def job_key_parts(namespace: str, suffix: str) -> tuple[str, str]:
    """What comes before and after a job's id in its `suffix` key (`video:{`, `}:status`):
    a script that holds only ids builds the key names from these."""
    before, _, after = _job_key(namespace, "0", suffix).rpartition("{0}")
    return f"{before}{{", f"}}{after}"
