"""Jobbox: status and progress of long-running jobs served from Redis, the database as the
record.

The public API is the names below, importable from `jobbox` itself
(docs/explanation/architecture.md; docs/tutorial.md adopts it in a project). Everything else
is private by convention, even where a module has no underscore. Importing `jobbox` loads
nothing: each name is imported from its module on first use, so the package can be imported before
Django's apps are ready, and nothing connects at import time.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The one version of the library: its wheel's (packaging/jobbox) and the repository's.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from jobbox.auth.invalidation import invalidate_token, invalidate_user, invalidate_users
    from jobbox.auth.principals import Principal, principal_for_request
    from jobbox.client import RedisUnavailable
    from jobbox.control import (
        CancelRequested,
        CancelWatch,
        append_log,
        cancel_requested,
        clear_cancel,
        clear_log,
        read_log,
        request_cancel,
        request_cancel_on_commit,
    )
    from jobbox.http.views import CachedAuthAPIView, JobBoxView, JobStatusAPIView
    from jobbox.model import Progress, Snapshot
    from jobbox.read import JobNotFound, cached_representation, read_cached, read_job
    from jobbox.reconcile import reconcile_recent
    from jobbox.registry import InvalidJobId, TrackedJob, register
    from jobbox.write import cache_committed, publish_on_commit, report_progress, save_transition

# Public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    # Describing a job kind to jobbox.
    "TrackedJob": "jobbox.registry",
    "register": "jobbox.registry",
    "InvalidJobId": "jobbox.registry",
    "Progress": "jobbox.model",
    "Snapshot": "jobbox.model",
    # Writing: transitions and progress.
    "save_transition": "jobbox.write",
    "publish_on_commit": "jobbox.write",
    "report_progress": "jobbox.write",
    "cache_committed": "jobbox.write",
    # Reading.
    "read_job": "jobbox.read",
    "read_cached": "jobbox.read",
    "cached_representation": "jobbox.read",
    "JobNotFound": "jobbox.read",
    "RedisUnavailable": "jobbox.client",
    # Control over a running job: cancelling it, its log (jobbox.control).
    "CancelRequested": "jobbox.control",
    "CancelWatch": "jobbox.control",
    "request_cancel": "jobbox.control",
    "request_cancel_on_commit": "jobbox.control",
    "cancel_requested": "jobbox.control",
    "clear_cancel": "jobbox.control",
    "append_log": "jobbox.control",
    "read_log": "jobbox.control",
    "clear_log": "jobbox.control",
    # Repair.
    "reconcile_recent": "jobbox.reconcile",
    # HTTP.
    "CachedAuthAPIView": "jobbox.http.views",
    "JobStatusAPIView": "jobbox.http.views",
    "JobBoxView": "jobbox.http.views",
    # Who is asking.
    "Principal": "jobbox.auth.principals",
    "principal_for_request": "jobbox.auth.principals",
    "invalidate_user": "jobbox.auth.invalidation",
    "invalidate_users": "jobbox.auth.invalidation",
    "invalidate_token": "jobbox.auth.invalidation",
}

__all__ = [
    "CachedAuthAPIView",
    "CancelRequested",
    "CancelWatch",
    "InvalidJobId",
    "JobBoxView",
    "JobNotFound",
    "JobStatusAPIView",
    "Principal",
    "Progress",
    "RedisUnavailable",
    "Snapshot",
    "TrackedJob",
    "append_log",
    "cache_committed",
    "cached_representation",
    "cancel_requested",
    "clear_cancel",
    "clear_log",
    "invalidate_token",
    "invalidate_user",
    "invalidate_users",
    "principal_for_request",
    "publish_on_commit",
    "read_cached",
    "read_job",
    "read_log",
    "reconcile_recent",
    "register",
    "report_progress",
    "request_cancel",
    "request_cancel_on_commit",
    "save_transition",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'jobbox' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
