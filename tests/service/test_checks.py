"""`manage.py check` names what would silently cost SQL or correctness (jobbox.checks): no
Redis URL, database sessions, a tracked model without its version field or an indexed
changed-at field, two job kinds sharing key names."""

from collections.abc import Iterator

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps

from academy.videos.tracking import VideoTracking
from jobbox import registry
from jobbox.checks import SESSION_MIDDLEWARE, SIGNED_COOKIES

DATABASE_SESSIONS = "django.contrib.sessions.backends.db"


def jobbox_ids() -> list[str]:
    return sorted(message.id for message in checks.run_checks(tags=["jobbox"]))


@pytest.fixture
def registered() -> Iterator[dict[str, registry.TrackedJob]]:
    """The TrackedJob registry, restored as it was after the test."""
    saved = dict(registry._registry)
    yield registry._registry
    registry._registry.clear()
    registry._registry.update(saved)


@pytest.fixture
def isolated() -> Iterator[None]:
    """Models declared in a test go to a throwaway app registry, not the project's."""
    with isolate_apps("jobbox"):
        yield


def version() -> models.Field:
    return models.PositiveBigIntegerField(default=1)


def changed_at(**options: bool) -> models.Field:
    return models.DateTimeField(auto_now=True, **options)


def job_model(name: str = "Lesson", meta: dict | None = None, **fields: models.Field) -> type:
    """A model in the throwaway registry (`isolated`), declared as a project would."""
    meta_class = type("Meta", (), {"app_label": "jobbox", **(meta or {})})
    return type(name, (models.Model,), {"__module__": __name__, "Meta": meta_class, **fields})


def track(model: type[models.Model], kind: str = "lesson", **namespaces: str) -> None:
    attributes = {"kind": kind, "model": model, "status_namespace": kind,
                  "progress_namespace": f"job:{kind}", "running_statuses": frozenset(),
                  "terminal_statuses": frozenset(), **namespaces}
    registry.register(type(f"{kind.title()}Tracking", (registry.TrackedJob,), attributes)())


def test_the_reference_service_passes_every_check():
    assert jobbox_ids() == []


def test_a_missing_redis_url_is_named():
    with override_settings(REDIS_URL=None, JOBBOX={}):
        (message,) = checks.run_checks(tags=["jobbox"])
    assert message.id == "jobbox.W001"
    assert "REDIS_URL" in message.hint
    with override_settings(REDIS_URL=None, JOBBOX={"REDIS_URL": "redis://127.0.0.1:6379/3"}):
        assert jobbox_ids() == []


def test_database_sessions_with_session_middleware_are_named():
    with override_settings(SESSION_ENGINE=DATABASE_SESSIONS):
        (message,) = checks.run_checks(tags=["jobbox"])
    assert message.id == "jobbox.W002"
    assert SIGNED_COOKIES in message.hint
    with override_settings(SESSION_ENGINE=SIGNED_COOKIES):
        assert jobbox_ids() == []


def test_session_authentication_in_drf_settings_counts_as_sessions_used(settings):
    middleware = [name for name in settings.MIDDLEWARE if name != SESSION_MIDDLEWARE]
    token_only = {"DEFAULT_AUTHENTICATION_CLASSES": ["jobbox.auth.drf.CachedTokenAuthentication"]}
    with override_settings(SESSION_ENGINE=DATABASE_SESSIONS, MIDDLEWARE=middleware,
                           REST_FRAMEWORK=token_only):
        assert jobbox_ids() == []  # token polls only: the session store is never read
    with_sessions = {"DEFAULT_AUTHENTICATION_CLASSES": [
        "jobbox.auth.drf.CachedSessionAuthentication"]}
    with override_settings(SESSION_ENGINE=DATABASE_SESSIONS, MIDDLEWARE=middleware,
                           REST_FRAMEWORK=with_sessions):
        assert jobbox_ids() == ["jobbox.W002"]


def test_a_tracked_model_without_its_version_field_is_an_error(registered, isolated):
    Lesson = job_model(status=models.CharField(max_length=20), updated_at=changed_at(db_index=True))
    # A version that is not a number cannot order snapshots.
    Quiz = job_model("Quiz", version=models.CharField(max_length=20),
                     updated_at=changed_at(db_index=True))

    track(Lesson)
    track(Quiz, kind="quiz")
    messages = checks.run_checks(tags=["jobbox"])
    assert [message.id for message in messages] == ["jobbox.E003", "jobbox.E003"]
    assert {message.obj for message in messages} == {Lesson, Quiz}
    assert "'version'" in messages[0].msg
    assert "PositiveBigIntegerField" in messages[0].hint


def test_a_tracked_model_with_a_version_and_an_indexed_changed_at_passes(registered, isolated):
    Lesson = job_model(version=version(), updated_at=changed_at(db_index=True))

    track(Lesson)
    assert jobbox_ids() == []


def test_a_tracked_model_without_its_changed_at_field_is_an_error(registered, isolated):
    Lesson = job_model(version=version())

    track(Lesson)
    (message,) = checks.run_checks(tags=["jobbox"])
    assert message.id == "jobbox.E004"
    assert "'updated_at'" in message.msg


@pytest.mark.parametrize("meta_indexes, indexed", [
    ([], False),
    ([models.Index(fields=["updated_at"], name="lesson_changed")], True),
    ([models.Index(fields=["-updated_at", "status"], name="lesson_changed_status")], True),
    # Not usable for `updated_at >= since` over the whole table:
    ([models.Index(fields=["status", "updated_at"], name="lesson_status_changed")], False),
    ([models.Index(fields=["updated_at"], name="lesson_running",
                   condition=models.Q(status="RUNNING"))], False),
])
def test_an_unindexed_changed_at_field_is_named(registered, isolated, meta_indexes, indexed):
    Lesson = job_model(meta={"indexes": meta_indexes}, status=models.CharField(max_length=20),
                       version=version(), updated_at=changed_at())

    track(Lesson)
    assert jobbox_ids() == ([] if indexed else ["jobbox.W005"])


def test_a_custom_changed_at_field_is_the_one_checked(registered, isolated):
    Lesson = job_model(version=version(), touched=changed_at())

    track(Lesson, changed_at_field="touched")
    (message,) = checks.run_checks(tags=["jobbox"])
    assert (message.id, message.obj) == ("jobbox.W005", Lesson)
    assert "Lesson.touched" in message.msg


@pytest.mark.parametrize("namespaces, collide", [
    ({"status_namespace": "video"}, True),  # the reference service's video kind
    ({"progress_namespace": "job:video"}, True),
    ({"status_namespace": "video:lesson", "progress_namespace": "job:video:lesson"}, False),
])
def test_job_kinds_sharing_key_namespaces_are_an_error(registered, isolated, namespaces,
                                                        collide):
    Lesson = job_model(version=version(), updated_at=changed_at(db_index=True))

    assert isinstance(registry.get("video"), VideoTracking)
    track(Lesson, **namespaces)
    messages = checks.run_checks(tags=["jobbox"])
    if not collide:
        assert messages == []
        return
    (message,) = messages
    assert message.id == "jobbox.E006"
    assert "'video'" in message.msg and "'lesson'" in message.msg


def test_a_namespace_that_cannot_name_a_key_is_an_error(registered, isolated):
    Lesson = job_model(version=version(), updated_at=changed_at(db_index=True))

    track(Lesson, status_namespace="Lesson{1}")
    (message,) = checks.run_checks(tags=["jobbox"])
    assert message.id == "jobbox.E007"


def test_manage_py_check_runs_them(registered, isolated):
    Lesson = job_model(version=version(), updated_at=changed_at(db_index=True))

    track(Lesson, status_namespace="video")
    with pytest.raises(SystemCheckError, match=r"jobbox\.E006"):
        call_command("check")
