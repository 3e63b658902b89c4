"""Django system checks (`manage.py check`) for settings and models that would silently cost
SQL on every poll or break correctness: each names what is wrong and how to fix it.

Registered from `JobboxConfig.ready()`; they read the settings and the TrackedJob registry
as they are when the checks run (after every app's `ready()` registered its jobs).
"""

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from jobbox import conf, keys, registry

# Django calls a check with the app configs to check (None: all) and keyword options.
AppConfigs = Sequence[Any] | None
Messages = list[checks.CheckMessage]

TAG = "jobbox"
SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
SESSION_AUTHENTICATION = {
    "jobbox.auth.drf.CachedSessionAuthentication",
    "rest_framework.authentication.SessionAuthentication",
}


def register_checks() -> None:
    for check in (check_redis_url, check_session_engine, check_tracked_models,
                  check_key_namespaces, check_settings):
        checks.register(check, TAG)


def check_redis_url(app_configs: AppConfigs = None, **kwargs: Any) -> Messages:
    if getattr(settings, "JOBBOX", {}).get("REDIS_URL") or getattr(settings, "REDIS_URL", None):
        return []
    return [checks.Warning(
        "No Redis URL is configured: jobbox connects to redis://127.0.0.1:6379/0, which "
        "another project on the same server may be using (and flushing).",
        hint='Set REDIS_URL = "redis://host:6379/N" (or JOBBOX["REDIS_URL"]) in your settings.',
        id="jobbox.W001",
    )]


def check_session_engine(app_configs: AppConfigs = None, **kwargs: Any) -> Messages:
    if not _sessions_used() or getattr(settings, "SESSION_ENGINE", "") == SIGNED_COOKIES:
        return []
    return [checks.Warning(
        f"Session authentication is on with SESSION_ENGINE = {settings.SESSION_ENGINE!r}: "
        "every poll from a logged-in browser reads its session from the session store, one "
        "SQL query per poll with the default database sessions.",
        hint=f'Set SESSION_ENGINE = "{SIGNED_COOKIES}" (the session travels in its signed '
             "cookie; jobbox caches the user in Redis), or authenticate polls by token only.",
        id="jobbox.W002",
    )]


def _sessions_used() -> bool:
    middleware = set(getattr(settings, "MIDDLEWARE", None) or [])
    rest_framework = getattr(settings, "REST_FRAMEWORK", {}) or {}
    authentication = set(rest_framework.get("DEFAULT_AUTHENTICATION_CLASSES", []))
    return SESSION_MIDDLEWARE in middleware or bool(authentication & SESSION_AUTHENTICATION)


def check_tracked_models(app_configs: AppConfigs = None, **kwargs: Any) -> Messages:
    found: Messages = []
    for job in registry.all_jobs():
        found += _version_field_errors(job)
        found += _changed_at_messages(job)
    return found


def _version_field_errors(job: registry.TrackedJob) -> Messages:
    model = job.model
    try:
        field = model._meta.get_field(job.version_field)
    except FieldDoesNotExist:
        problem = "has no field"
    else:
        if isinstance(field, models.IntegerField):
            return []
        problem = f"has a {type(field).__name__}, not an integer field,"
    return [checks.Error(
        f"{model._meta.label} (tracked job {job.kind!r}) {problem} {job.version_field!r}: the "
        "version every transition bumps, which keeps an older snapshot from replacing a newer "
        "one in Redis.",
        hint="Add `version = models.PositiveBigIntegerField(default=1)` to the model (and a "
             "migration), or point TrackedJob.version_field at the model's version field.",
        obj=model,
        id="jobbox.E003",
    )]


def _changed_at_messages(job: registry.TrackedJob) -> Messages:
    model, name = job.model, job.changed_at_field
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return [checks.Error(
            f"{model._meta.label} (tracked job {job.kind!r}) has no field {name!r}: the "
            "timestamp every transition updates, which the reconciler and the job box query.",
            hint="Add `updated_at = models.DateTimeField(auto_now=True, db_index=True)`, or "
                 "point TrackedJob.changed_at_field at the model's changed-at field.",
            obj=model,
            id="jobbox.E004",
        )]
    if _indexed_first(model, field):
        return []
    return [checks.Warning(
        f"{model._meta.label}.{name} (tracked job {job.kind!r}) has no index: every "
        "reconcile run and every job box rebuilt from the database scans the whole table.",
        hint=f"Set db_index=True on {name!r}, or add a models.Index whose first field is it.",
        obj=model,
        id="jobbox.W005",
    )]


def _indexed_first(model: type[models.Model], field: models.Field) -> bool:
    """An index the range query `field >= since` can use: the field's own, or a full (not
    partial) index or unique constraint whose first column it is."""
    if field.db_index or field.unique or field.primary_key:
        return True
    leading = [
        *(index.fields[0] for index in model._meta.indexes
          if index.fields and index.condition is None),
        *(constraint.fields[0] for constraint in model._meta.constraints
          if isinstance(constraint, models.UniqueConstraint) and constraint.fields
          and constraint.condition is None),
        *(fields[0] for fields in model._meta.unique_together if fields),
    ]
    return field.name in {name.lstrip("-") for name in leading}


def check_key_namespaces(app_configs: AppConfigs = None, **kwargs: Any) -> Messages:
    if conf.problems(conf.configured()):
        return []  # key names need KEY_PREFIX: check_settings reports what is wrong first
    jobs = registry.all_jobs()
    return [*_invalid_namespaces(jobs), *_colliding_namespaces(jobs)]


def _invalid_namespaces(jobs: Iterable[registry.TrackedJob]) -> Messages:
    found = []
    for job in jobs:
        for attribute in ("status_namespace", "progress_namespace"):
            namespace = getattr(job, attribute)
            try:
                keys.status_key(namespace, "1")
            except keys.InvalidKeyPart:
                found.append(checks.Error(
                    f"Tracked job {job.kind!r}: {attribute} {namespace!r} cannot name a Redis "
                    "key; every read and write of the job would fail.",
                    hint="Use lower-case words separated by colons, like 'video' or "
                         "'job:video'.",
                    obj=type(job),
                    id="jobbox.E007",
                ))
    return found


def _colliding_namespaces(jobs: Sequence[registry.TrackedJob]) -> Messages:
    """Keys are `<namespace>:{<id>}:<suffix>` and neither namespaces nor ids may hold a brace,
    so two kinds share keys exactly when they share a status or a progress namespace (a
    namespace that is a prefix of another, like 'job' and 'job:video', cannot)."""
    found = []
    for first, second in combinations(jobs, 2):
        shared = [
            f"{attribute} {getattr(first, attribute)!r}"
            for attribute in ("status_namespace", "progress_namespace")
            if getattr(first, attribute) == getattr(second, attribute)
        ]
        if shared:
            found.append(checks.Error(
                f"Tracked jobs {first.kind!r} and {second.kind!r} share {' and '.join(shared)}: "
                "job 42 of one and job 42 of the other would read and overwrite each other's "
                "snapshot in Redis.",
                hint="Give each job kind its own namespaces (for example its kind's name).",
                obj=type(second),
                id="jobbox.E006",
            ))
    return found


def check_settings(app_configs: AppConfigs = None, **kwargs: Any) -> Messages:
    raw = conf.configured()
    return [*_unknown_settings(raw), *_invalid_settings(raw), *_renamed_settings(raw)]


def _unknown_settings(raw: dict[str, Any]) -> Messages:
    return [checks.Error(
        f"JOBBOX[{name!r}] is not a jobbox setting: its value is not used.",
        hint="Check its spelling against the settings reference (jobbox.conf.JobboxSettings).",
        id="jobbox.E008",
    ) for name in conf.unknown_names(raw)]


def _invalid_settings(raw: dict[str, Any]) -> Messages:
    found = []
    for name, problem in conf.problems(raw).items():
        setting = conf.FIELDS[conf.RENAMED_SETTINGS.get(name, name)]
        unit = setting.metadata["unit"]
        found.append(checks.Error(
            f"JOBBOX[{name!r}] {problem}: jobbox refuses to start with it.",
            hint=f"The default of {setting.name} is {conf.default_of(setting)!r}"
                 + (f" ({unit})." if unit else "."),
            id="jobbox.E009",
        ))
    return found


def _renamed_settings(raw: dict[str, Any]) -> Messages:
    return [checks.Warning(
        f"JOBBOX[{old!r}] is deprecated; it still works, under its new name "
        f"{conf.RENAMED_SETTINGS[old]!r}.",
        hint=f"Rename it to {conf.RENAMED_SETTINGS[old]!r}"
             + (" and give it in seconds." if old in conf.OLD_UNITS_PER_NEW_UNIT else "."),
        id="jobbox.W010",
    ) for old in conf.renamed_names(raw)]
