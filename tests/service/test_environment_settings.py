"""The service's settings read from the environment through `academy.env`: typed values,
defaults for unset or empty variables, and errors that name the variable."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from academy import env


def test_unset_and_empty_variables_give_the_default(monkeypatch):
    monkeypatch.delenv("JOBBOX_TEST_COUNT", raising=False)
    assert env.integer("JOBBOX_TEST_COUNT", 7) == 7
    monkeypatch.setenv("JOBBOX_TEST_COUNT", "")
    assert env.integer("JOBBOX_TEST_COUNT", 7) == 7
    assert env.optional_text("JOBBOX_TEST_COUNT") is None


def test_values_are_parsed_into_their_types(monkeypatch):
    monkeypatch.setenv("JOBBOX_TEST_COUNT", " 12 ")
    monkeypatch.setenv("JOBBOX_TEST_SECONDS", "2.5")
    monkeypatch.setenv("JOBBOX_TEST_FLAG", "Yes")
    monkeypatch.setenv("JOBBOX_TEST_HOSTS", "a.example, b.example,")
    assert env.integer("JOBBOX_TEST_COUNT", 1) == 12
    assert env.number("JOBBOX_TEST_SECONDS", 1.0) == 2.5
    assert env.flag("JOBBOX_TEST_FLAG") is True
    assert env.words("JOBBOX_TEST_HOSTS", "") == ["a.example", "b.example"]


@pytest.mark.parametrize(("reader", "raw", "default"), [
    (env.integer, "ten", 10),
    (env.integer, "2.5", 1),
    (env.integer, "-3", 1),
    (env.number, "fast", 1.0),
    (env.flag, "maybe", False),
])
def test_a_value_that_cannot_be_read_is_refused_naming_the_variable(
        monkeypatch, reader, raw, default):
    monkeypatch.setenv("JOBBOX_TEST_VALUE", raw)
    with pytest.raises(ImproperlyConfigured, match="JOBBOX_TEST_VALUE"):
        reader("JOBBOX_TEST_VALUE", default)
