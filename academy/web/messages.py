"""What the page says for the texts the API sends: step names, failure reasons, refusals.

The API speaks English and stable codes (docs/reference/http-api.md); a person reads the page's
language. Each message the services can send is listed here once, as an English template with
`{named}` parts, beside its translation from the catalog (locale/ko/LC_MESSAGES/django.po).
The page's script matches a text against the templates, fills the translation with the parts
it found, and shows the text as sent only when no template fits. Upload refusals are
translated by their `code`, so no raw code reaches a person.

The API's own refusals go through the same catalog (`in_active_language`), so a program or a
person gets them in the language of the request (academy.api_language), as the page shows them.
"""

import re
from functools import lru_cache

from django.utils import translation
from django.utils.translation import gettext as _


def steps() -> list[list[str]]:
    """Step names, as the workers report them (academy.ai.job_types.grade_report, videos)."""
    return [
        ["read sheet", _("read sheet")],
        ["validate rows", _("validate rows")],
        ["totals and ranks", _("totals and ranks")],
        ["subject statistics", _("subject statistics")],
        ["write report", _("write report")],
        ["probe", _("probe")],
        ["transcode {rendition}", _("transcode {rendition}")],
        ["package", _("package")],
    ]


def reasons() -> list[list[str]]:
    """Why a job failed, and why a row was left out of a grade report ("; "-joined)."""
    return [
        *_job_reasons(),
        *_row_reasons(),
        *_video_reasons(),
        *_upload_refusals(),
    ]


def _job_reasons() -> list[list[str]]:
    return [
        ["The sheet is empty.", _("The sheet is empty.")],
        ["The workbook could not be read.", _("The workbook could not be read.")],
        ["The file is larger than {limit} bytes.", _("The file is larger than {limit} bytes.")],
        ["No valid student rows ({count} bad).", _("No valid student rows ({count} bad).")],
        ["No valid student rows ({count} bad). {rows}",
         _("No valid student rows ({count} bad). {rows}")],
        ["Row {row} (the header) must name the student column and at least one subject "
         "column.", _("Row {row} (the header) must name the student column and at least one "
                      "subject column.")],
        ["The header has more than {count} subject columns.",
         _("The header has more than {count} subject columns.")],
        ["Row {row}: a subject name is longer than {count} characters.",
         _("Row {row}: a subject name is longer than {count} characters.")],
        ["Row {row}: column {column} has no subject name.",
         _("Row {row}: column {column} has no subject name.")],
        ["Row {row}: subject {subject} appears more than once.",
         _("Row {row}: subject {subject} appears more than once.")],
        ["This job type is no longer available.", _("This job type is no longer available.")],
        ["The job failed unexpectedly. Please try again.",
         _("The job failed unexpectedly. Please try again.")],
        ["simulated failure", _("simulated failure")],
    ]


def _row_reasons() -> list[list[str]]:
    return [
        ["row {row}: {reason}", _("row {row}: {reason}")],
        ["no student name", _("no student name")],
        ["the student name is longer than {count} characters",
         _("the student name is longer than {count} characters")],
        ["student {name} is already on row {row}", _("student {name} is already on row {row}")],
        ["no score for {subject}", _("no score for {subject}")],
        ["score for {subject} is not a number ({value})",
         _("score for {subject} is not a number ({value})")],
        ["score for {subject} is {score}, outside {low} to {high}",
         _("score for {subject} is {score}, outside {low} to {high}")],
    ]


def _video_reasons() -> list[list[str]]:
    return [
        ["The uploaded file is missing.", _("The uploaded file is missing.")],
        ["The file is empty.", _("The file is empty.")],
        ["The file could not be read as a video in time.",
         _("The file could not be read as a video in time.")],
        ["The file is not a playable video.", _("The file is not a playable video.")],
        ["The video has no duration.", _("The video has no duration.")],
        ["The file is larger than the limit of {limit} bytes.",
         _("The file is larger than the limit of {limit} bytes.")],
        ["A video file is required (multipart field `file`).", _("Choose a video file.")],
        ["A title of 1 to {count} characters is required.",
         _("A title of 1 to {count} characters is required.")],
        ["Transcoding did not finish in {count} attempts (the worker stopped answering).",
         _("Transcoding did not finish in {count} attempts (the worker stopped answering).")],
    ]


def _upload_refusals() -> list[list[str]]:
    """`POST /api/ai/jobs/` refusals whose numbers a person needs (academy.ai.uploads)."""
    return [
        ["Unknown job_type. Known types: {types}.",
         _("Unknown job_type. Known types: {types}.")],
        ["The sheet has more than {count} data rows.",
         _("The sheet has more than {count} data rows.")],
        ["The sheet spans more than {count} rows.", _("The sheet spans more than {count} rows.")],
        ["Send the sheet as `file` and its `job_type`.", _("Choose a file to upload.")],
        ["The upload is too large.", _("The file is too large.")],
        ["The workbook expands to more than allowed.",
         _("The workbook expands to more than allowed.")],
    ]


def refusals() -> dict[str, str]:
    """`POST /api/ai/jobs/` refusals by code (academy.ai.uploads, academy.ai.views)."""
    return {
        "file_too_large": _("The file is too large."),
        "not_xlsx": _("The file is not an Excel workbook (.xlsx)."),
        "too_many_rows": _("The sheet has more rows than allowed."),
        "too_many_columns": _("The sheet has more subject columns than allowed."),
        "missing_field": _("Choose a file to upload."),
        "unknown_job_type": _("This kind of job is not available."),
    }


# Parts that hold messages themselves (a row's reasons): only they may span the "; " joint.
_NESTED_PARTS = frozenset({"reason", "rows"})
_PART = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=8)
def _compiled(language: str) -> tuple[tuple[re.Pattern[str], tuple[str, ...], str], ...]:
    """The reasons' templates as patterns, with their translations in `language` (the page's
    script does the same: jobbox.js, `compile`)."""
    with translation.override(language):
        catalog = reasons()
    compiled = []
    for template, translated in catalog:
        parts = _PART.split(template)
        names = tuple(parts[1::2])
        source = "".join(
            re.escape(part) if i % 2 == 0
            else ("(.+?)" if part in _NESTED_PARTS else "((?:(?!; ).)+?)")
            for i, part in enumerate(parts))
        compiled.append((re.compile(f"^{source}$", re.S), names, translated,
                         len("".join(parts[::2]))))
    # The most specific template first: "The file is larger than {limit} bytes." must not
    # take "The file is larger than the limit of 9 bytes." with "the limit of 9" as its part.
    compiled.sort(key=lambda entry: -entry[3])
    return tuple(entry[:3] for entry in compiled)


def in_active_language(text: str, *, code: str | None = None) -> str:
    """An English message of the API in the active language: its template's translation with
    the parts it carried; else the refusal's own sentence for its `code`; else as it is."""
    language = translation.get_language() or "en"
    if language.startswith("en"):
        return text
    for pattern, names, translated in _compiled(language):
        match = pattern.match(text)
        if match:
            values = dict(zip(names, match.groups(), strict=True))
            for name in _NESTED_PARTS & values.keys():
                values[name] = in_active_language(values[name])
            return _PART.sub(lambda part, found=values: found.get(part.group(1), part.group(0)),
                             translated)
    if "; " in text:
        return "; ".join(in_active_language(part) for part in text.split("; "))
    by_code = refusals().get(code or "")
    return by_code if by_code else text
