"""The page's catalog of the API's texts: every step a worker names and every label the page
shows has its Korean translation (a text missing from the .po would reach a person in
English on the Korean page)."""

import re

from django.utils import translation

from academy.ai.job_types.grade_report import GradeReport
from academy.web import messages
from academy.web.views import _script_labels


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def english_and_korean(catalog):
    with translation.override("en"):
        english = catalog()
    with translation.override("ko"):
        korean = catalog()
    return english, korean


def test_every_step_and_reason_has_a_korean_translation_with_the_same_parts():
    for catalog in (messages.steps, messages.reasons):
        english, korean = english_and_korean(catalog)
        for (template, in_english), (_, in_korean) in zip(english, korean, strict=True):
            assert in_korean != in_english, f"no Korean for {template!r}"
            # The page fills a translation with the parts it matched in the English text.
            assert placeholders(in_korean) == placeholders(template) == placeholders(
                in_english), template


def test_the_grade_reports_steps_are_all_in_the_catalog():
    templates = {template for template, _ in messages.steps()}
    assert set(GradeReport.steps) <= templates


def test_every_refusal_code_and_report_heading_is_translated():
    english, korean = english_and_korean(messages.refusals)
    assert set(english) == {"file_too_large", "not_xlsx", "too_many_rows", "too_many_columns",
                            "missing_field", "unknown_job_type"}
    assert all(korean[code] != english[code] for code in english)
    english, korean = english_and_korean(lambda: _script_labels()["report"])
    assert all(korean[key] != english[key] for key in english)
