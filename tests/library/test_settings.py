"""The typed settings object: defaults, overrides, immutability, renamed names and the
system checks that report a JOBBOX dict jobbox cannot use."""

import dataclasses

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from jobbox import conf
from jobbox.conf import JobboxSettings


def jobbox_check_ids() -> set[str]:
    return {message.id for message in checks.run_checks(tags=["jobbox"])}


@override_settings(JOBBOX={})
def test_an_empty_jobbox_dict_gives_every_declared_default():
    resolved = conf.settings()
    for setting in dataclasses.fields(JobboxSettings):
        if setting.name != "REDIS_URL":  # resolved from Django's own REDIS_URL
            assert getattr(resolved, setting.name) == conf.default_of(setting), setting.name


@override_settings(JOBBOX={}, REDIS_URL="redis://127.0.0.1:6379/9")
def test_an_unset_redis_url_falls_back_to_djangos_redis_url():
    assert conf.settings().REDIS_URL == "redis://127.0.0.1:6379/9"


def test_every_setting_explains_its_default_and_names_its_unit():
    for setting in dataclasses.fields(JobboxSettings):
        assert len(setting.metadata["doc"]) > 20, setting.name
        unit = setting.metadata["unit"]
        assert unit in ("seconds", "bytes", "count", "per minute", None), setting.name
        if setting.name.endswith("_SECONDS"):
            assert unit == "seconds", setting.name
        if setting.name.endswith("_BYTES"):
            assert unit == "bytes", setting.name
        assert not setting.name.endswith(("_MS", "_MILLISECONDS")), setting.name


def test_the_settings_follow_override_settings_and_return_after_it():
    before = conf.settings().BOX_MAX_JOBS
    with override_settings(JOBBOX={"BOX_MAX_JOBS": before + 7, "STREAM_RECHECK_SECONDS": 2}):
        assert before + 7 == conf.settings().BOX_MAX_JOBS
        assert conf.settings().STREAM_RECHECK_SECONDS == 2.0
        assert isinstance(conf.settings().STREAM_RECHECK_SECONDS, float)
    assert before == conf.settings().BOX_MAX_JOBS


def test_the_settings_are_resolved_once_per_settings_change():
    with override_settings(JOBBOX={"BOX_MAX_JOBS": 5}):
        assert conf.settings() is conf.settings()


def test_the_settings_object_cannot_be_changed():
    with pytest.raises(dataclasses.FrozenInstanceError):
        conf.settings().BOX_MAX_JOBS = 1  # type: ignore[misc]


@override_settings(JOBBOX={"PRINCIPAL_MODELS": ["tenants.Membership"]})
def test_a_list_setting_is_held_as_a_tuple():
    assert conf.settings().PRINCIPAL_MODELS == ("tenants.Membership",)


@pytest.mark.parametrize(("old", "value", "new", "expected"), [
    ("FALLBACK_CACHE_SECONDS", 7, "OUTAGE_COPY_SECONDS", 7.0),
    ("FALLBACK_CACHE_MAX_ENTRIES", 50, "OUTAGE_COPY_MAX_ENTRIES", 50),
    ("PRINCIPAL_FALLBACK_SECONDS", 9, "PRINCIPAL_OUTAGE_COPY_SECONDS", 9.0),
    ("JOBBOX_MAX_JOBS", 12, "BOX_MAX_JOBS", 12),
    ("PROGRESS_EVENT_INTERVAL_MS", 500, "PROGRESS_EVENT_INTERVAL_SECONDS", 0.5),
    ("FILL_LEASE_MILLISECONDS", 300, "FILL_LEASE_SECONDS", 0.3),
])
def test_an_old_setting_name_still_works_and_warns_with_the_new_name(old, value, new, expected):
    with override_settings(JOBBOX={old: value}):
        with pytest.warns(DeprecationWarning, match=new):
            resolved = conf.settings()
        assert getattr(resolved, new) == pytest.approx(expected)
        assert "jobbox.W010" in jobbox_check_ids()
    assert conf.RENAMED_SETTINGS[old] == new


@override_settings(JOBBOX={"JOBBOX_MAX_JOBS": 12, "BOX_MAX_JOBS": 30})
def test_the_new_name_wins_over_the_old_one():
    with pytest.warns(DeprecationWarning):
        assert conf.settings().BOX_MAX_JOBS == 30


@override_settings(JOBBOX={"FILL_LEASE_SECONDS": 0.3})
def test_the_deprecated_get_answers_old_names_in_their_old_units():
    assert conf.get("FILL_LEASE_SECONDS") == 0.3
    with pytest.warns(DeprecationWarning, match="FILL_LEASE_SECONDS"):
        assert conf.get("FILL_LEASE_MILLISECONDS") == pytest.approx(300)


@override_settings(JOBBOX={"OUTAGE_COPY_SECOND": 3})
def test_an_unknown_setting_is_a_system_check_error():
    messages = [m for m in checks.run_checks(tags=["jobbox"]) if m.id == "jobbox.E008"]
    assert len(messages) == 1 and "OUTAGE_COPY_SECOND" in messages[0].msg
    assert conf.settings().OUTAGE_COPY_SECONDS == 1.0  # the misspelt value is not used


@pytest.mark.parametrize(("name", "value"), [
    ("BOX_MAX_JOBS", "100"),
    ("BOX_MAX_JOBS", 2.5),
    ("REDIS_CLUSTER", "yes"),
    ("STREAM_MAX_SECONDS", -1),
    ("SOCKET_TIMEOUT_SECONDS", 0),
    ("PRINCIPAL_MODELS", "tenants.Membership"),
    ("KEY_PREFIX", None),
    ("FILL_LEASE_MILLISECONDS", "300"),
])
@pytest.mark.filterwarnings("ignore:JOBBOX:DeprecationWarning")  # the old name's, proven above
def test_a_value_of_the_wrong_type_or_range_is_a_system_check_error(name, value):
    with override_settings(JOBBOX={name: value}):
        messages = [m for m in checks.run_checks(tags=["jobbox"]) if m.id == "jobbox.E009"]
        assert len(messages) == 1 and name in messages[0].msg
        with pytest.raises(ImproperlyConfigured, match=name):
            conf.settings()


@override_settings(JOBBOX={"TOKEN_MISSES_PER_MINUTE": 0, "OUTAGE_PREFETCH_MAX_JOBS": 0})
def test_zero_is_accepted_where_it_means_none_allowed():
    assert "jobbox.E009" not in jobbox_check_ids()
    assert conf.settings().TOKEN_MISSES_PER_MINUTE == 0
