"""`excel.grade_report`: a score sheet in, per-student and per-subject results out.

The sheet (the first one of the workbook): its first non-empty row is the header, a student
column then one column per subject; every following row is one student. Every row is
validated; a bad row is reported by its row number and reason and left out of the figures,
never a crash. The result has each valid student's total, average and rank (ties share a
rank: 1, 2, 2, 4), each subject's count, mean, median, min, max and standard deviation, and
the bad rows; the same tables are written to a downloadable .xlsx report (styled, with a
native chart and its statistics stated; every text cell written as text, never a formula).

The upload is judged from its package's parts alone (academy.ai.uploads); the sheet is parsed
on the worker, in a child process under CPU and memory limits, by the cells it holds, not
the dimension it declares (academy.ai.sheet_reader).
"""

import io
import math
import statistics
from dataclasses import dataclass
from typing import IO, Any

import openpyxl
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import quote_sheetname

from academy.ai.job_types import JobContext, JobFailed, JobOutput, JobType
from academy.ai.sheet_reader import MAX_SUBJECT_COLUMNS, ReadLimits, read_sheet_limited
from academy.ai.uploads import PackageBudget, UploadRefused, check_xlsx

MIN_SCORE = 0
MAX_SCORE = 100
# Progress is reported about this many times per step: often enough to watch, rare enough
# that a 10,000-row sheet costs a few dozen Redis calls, not thousands.
REPORTS_PER_STEP = 20
# How many bad rows an error message quotes when no row at all was valid.
QUOTED_BAD_ROWS = 5
# A student or subject name longer than this is a mistake in the sheet (a pasted paragraph),
# and it would make every row of the result and of a poll's summary heavier.
MAX_NAME_CHARS = 100
# File names longer than this are cut on the job card (most systems stop at 255 bytes).
MAX_FILE_NAME_CHARS = 120

Number = int | float

# The report workbook's look. Excel's width unit is about one character of the default font.
MIN_COLUMN_WIDTH = 8
MAX_COLUMN_WIDTH = 40  # a long name wraps past this instead of widening the sheet forever
WIDTH_PADDING = 2
WIDE_CHARACTER_FROM = 0x1100  # Hangul Jamo and above: East Asian, about two columns wide
HEADER_FONT = Font(bold=True)
DECIMAL_FORMAT = "0.00"
WHOLE_FORMAT = "0"
CHART_ANCHOR = "J2"
CHART_WIDTH_CM = 16
CHART_HEIGHT_CM = 8
# What Excel, LibreOffice and Sheets read as the start of a formula (or DDE) when typed.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STATS_COLUMNS = ("subject", "count", "mean", "median", "min", "max", "stdev")
# The report's words, translated when it is written (`write_report`, in the asker's language).
STATS_HEADERS = (gettext_noop("Subject"), gettext_noop("Count"), gettext_noop("Mean"),
                 gettext_noop("Median"), gettext_noop("Min"), gettext_noop("Max"),
                 gettext_noop("Std dev (population)"))
STATISTICS_NOTES = (
    gettext_noop("Statistics over the valid rows only; the rows left out are on the Bad rows "
                 "sheet."),
    gettext_noop("Std dev is the population standard deviation (Excel's STDEV.P): the sheet "
                 "is the whole class, not a sample of it."),
    gettext_noop("Median: the middle score (the mean of the two middle ones for an even "
                 "count)."),
    gettext_noop("Rank: by total, highest first; equal totals share a rank (1, 2, 2, 4)."),
)
# A report of a job without a language (made before languages were recorded, or in-process).
REPORT_DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class StudentRow:
    row: int
    student: str
    scores: dict[str, Number]


@dataclass(frozen=True, slots=True)
class BadRow:
    row: int
    reason: str


class GradeReport(JobType):
    name = "excel.grade_report"
    steps = ("read sheet", "validate rows", "totals and ranks", "subject statistics",
             "write report")

    def check_upload(self, content: IO[bytes], *, size_bytes: int) -> dict[str, Any]:
        # The package only: no XML is parsed in the web request.
        check_xlsx(content, size_bytes=size_bytes, budget=PackageBudget.from_settings())
        return {"file_name": upload_file_name(content)}

    def run(self, context: JobContext) -> JobOutput:
        context.report_step(1, 0)
        limit = settings.AI_UPLOAD_MAX_BYTES
        with context.open_upload() as upload:
            # Read whole, within the upload limit: openpyxl needs a seekable file, and a remote
            # storage's stream need not be one.
            data = upload.read(limit + 1)
        if len(data) > limit:
            raise JobFailed(f"The file is larger than {limit} bytes.")
        sheet_name, rows = read_sheet(data)
        context.report_step(1, 100)
        if not rows:
            raise JobFailed("The sheet is empty.")
        subjects = parse_header(*rows[0])
        students, bad_rows = validate_rows(subjects, rows[1:], context)
        if not students:
            quoted = "; ".join(f"row {b.row}: {b.reason}" for b in bad_rows[:QUOTED_BAD_ROWS])
            raise JobFailed(f"No valid student rows ({len(bad_rows)} bad). {quoted}".strip())
        context.report_step(3, 0)
        ranked = rank_students(subjects, students)
        context.report_step(4, 0)
        subject_stats = [subject_statistics(subject, students) for subject in subjects]
        context.report_step(5, 0)
        result = {
            "sheet": sheet_name,
            "subjects": subjects,
            "summary": {
                "rows": len(students) + len(bad_rows),
                "valid_rows": len(students),
                "bad_rows": len(bad_rows),
            },
            "students": ranked,
            "subject_stats": subject_stats,
            "bad_rows": [{"row": b.row, "reason": b.reason} for b in bad_rows],
        }
        language = context.payload.get("language") or REPORT_DEFAULT_LANGUAGE
        with translation.override(language):
            report = write_report(subjects, ranked, subject_stats, bad_rows)
        context.report_step(5, 100)
        return JobOutput(result=result, report=report)


def upload_file_name(content: IO[bytes]) -> str:
    """The name the person's file had (shown on their job card), without a folder or control
    characters; never used in a path (academy.ai.storage names files by job id)."""
    name = str(getattr(content, "name", "") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:MAX_FILE_NAME_CHARS]


def read_sheet(data: bytes) -> tuple[str, list[tuple[int, tuple[Any, ...]]]]:
    """The first sheet's non-empty rows as (row number, values), read in a child process
    within the package budget, the row limit and the parse's CPU and memory limits."""
    try:
        return read_sheet_limited(data, max_rows=settings.AI_MAX_ROWS,
                                  budget=PackageBudget.from_settings(),
                                  limits=ReadLimits.from_settings())
    except UploadRefused as refused:
        raise JobFailed(refused.message) from None


def parse_header(number: int, values: tuple[Any, ...]) -> list[str]:
    """The subjects the header row (the first non-empty one) names after the student column."""
    cells = list(values)
    while cells and _blank(cells[-1]):
        cells.pop()
    subjects = [str(value).strip() if not _blank(value) else "" for value in cells[1:]]
    if not subjects:
        raise JobFailed(f"Row {number} (the header) must name the student column and at "
                        "least one subject column.")
    if len(subjects) > MAX_SUBJECT_COLUMNS:
        raise JobFailed(f"The header has more than {MAX_SUBJECT_COLUMNS} subject columns.")
    too_long = next((s for s in subjects if len(s) > MAX_NAME_CHARS), None)
    if too_long is not None:
        raise JobFailed(f"Row {number}: a subject name is longer than {MAX_NAME_CHARS} "
                        "characters.")
    for index, subject in enumerate(subjects, start=2):
        if not subject:
            raise JobFailed(f"Row {number}: column {get_column_letter(index)} "
                            "has no subject name.")
    duplicates = sorted({s for s in subjects if subjects.count(s) > 1})
    if duplicates:
        raise JobFailed(f"Row {number}: subject {duplicates[0]!r} appears more than once.")
    return subjects


def validate_rows(
    subjects: list[str], rows: list[tuple[int, tuple[Any, ...]]], context: JobContext
) -> tuple[list[StudentRow], list[BadRow]]:
    students: list[StudentRow] = []
    bad_rows: list[BadRow] = []
    first_row_of: dict[str, int] = {}
    every = max(1, len(rows) // REPORTS_PER_STEP)
    for position, (number, values) in enumerate(rows):
        context.check_cancel()  # a cancelled job stops between rows
        if position % every == 0:
            context.report_step(2, 100 * position / len(rows))
        problems: list[str] = []
        name = "" if _blank(values[0]) else str(values[0]).strip()
        if not name:
            problems.append("no student name")
        elif len(name) > MAX_NAME_CHARS:
            problems.append(f"the student name is longer than {MAX_NAME_CHARS} characters")
        elif name in first_row_of:
            problems.append(f"student {name!r} is already on row {first_row_of[name]}")
        scores: dict[str, Number] = {}
        for column, subject in enumerate(subjects, start=1):
            value = values[column] if column < len(values) else None
            score, problem = parse_score(subject, value)
            if problem:
                problems.append(problem)
            else:
                scores[subject] = score
        if problems:
            bad_rows.append(BadRow(number, "; ".join(problems)))
            continue
        first_row_of[name] = number
        students.append(StudentRow(number, name, scores))
    context.report_step(2, 100)
    return students, bad_rows


def parse_score(subject: str, value: Any) -> tuple[Number, str | None]:
    if _blank(value):
        return 0, f"no score for {subject!r}"
    if isinstance(value, bool):
        return 0, f"score for {subject!r} is not a number ({value!r})"
    number: float
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return 0, f"score for {subject!r} is not a number ({str(value)[:40]!r})"
    if not math.isfinite(number):
        return 0, f"score for {subject!r} is not a number ({str(value)[:40]!r})"
    if not MIN_SCORE <= number <= MAX_SCORE:
        return 0, f"score for {subject!r} is {_tidy(number)}, outside {MIN_SCORE} to {MAX_SCORE}"
    return _tidy(number), None


def rank_students(subjects: list[str], students: list[StudentRow]) -> list[dict[str, Any]]:
    totals = {s.row: math.fsum(s.scores.values()) for s in students}
    ordered = sorted(students, key=lambda s: (-totals[s.row], s.row))
    ranked: list[dict[str, Any]] = []
    previous_total: float | None = None
    rank = 0
    for position, student in enumerate(ordered, start=1):
        total = totals[student.row]
        if total != previous_total:  # competition ranking: ties share a rank, then a gap
            rank, previous_total = position, total
        ranked.append({
            "rank": rank,
            "row": student.row,
            "student": student.student,
            "scores": {subject: student.scores[subject] for subject in subjects},
            "total": _tidy(total),
            "average": _tidy(total / len(subjects)),
        })
    return ranked


def subject_statistics(subject: str, students: list[StudentRow]) -> dict[str, Any]:
    scores = [float(s.scores[subject]) for s in students]
    return {
        "subject": subject,
        "count": len(scores),
        "mean": _tidy(statistics.fmean(scores)),
        "median": _tidy(statistics.median(scores)),
        "min": _tidy(min(scores)),
        "max": _tidy(max(scores)),
        "stdev": _tidy(statistics.pstdev(scores)),
    }


def write_report(
    subjects: list[str], ranked: list[dict[str, Any]], subject_stats: list[dict[str, Any]],
    bad_rows: list[BadRow],
) -> bytes:
    """The styled .xlsx: Students, Subjects (with its chart and the statistics stated), Bad rows,
    its sheet names, headings and notes in the active language (the asker's).

    Write-only: openpyxl streams each row's cells to the file as it is appended, so a
    10,000-row report holds the values, never a grid of styled cells.
    """
    workbook = openpyxl.Workbook(write_only=True)
    student_rows = [[e["student"], *(e["scores"][s] for s in subjects), e["total"],
                     e["average"], e["rank"]] for e in ranked]
    _write_table(workbook.create_sheet(_("Students")),
                 [_("Student"), *subjects, _("Total"), _("Average"), _("Rank")], student_rows,
                 formats={len(subjects) + 2: DECIMAL_FORMAT, len(subjects) + 3: WHOLE_FORMAT})
    stats_rows = [[s[key] for key in STATS_COLUMNS] for s in subject_stats]
    subjects_sheet = workbook.create_sheet(_("Subjects"))
    _write_table(subjects_sheet, [_(title) for title in STATS_HEADERS], stats_rows,
                 formats={1: WHOLE_FORMAT, **{c: DECIMAL_FORMAT for c in range(2, 7)}},
                 notes=tuple(_(note) for note in STATISTICS_NOTES))
    subjects_sheet.add_chart(_means_chart(subjects_sheet.title, len(stats_rows)), CHART_ANCHOR)
    _write_table(workbook.create_sheet(_("Bad rows")), [_("Row"), _("Reason")],
                 [[b.row, b.reason] for b in bad_rows], formats={0: WHOLE_FORMAT})
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _write_table(
    sheet: Any, header: list[str], rows: list[list[Any]], *, formats: dict[int, str],
    notes: tuple[str, ...] = (),
) -> None:
    """A bold, frozen header over the rows; widths from the longest text of each column."""
    for index, width in enumerate(_column_widths([header, *rows]), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append([_cell(sheet, title, bold=True) for title in header])
    for values in rows:
        sheet.append([_cell(sheet, value, number_format=formats.get(column))
                      for column, value in enumerate(values)])
    if notes:
        sheet.append([])
        for note in notes:
            sheet.append([_cell(sheet, note)])


def _cell(sheet: Any, value: Any, *, bold: bool = False,
          number_format: str | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        # Text is text: openpyxl would store "=..." as a live formula (a student named
        # =HYPERLINK(...) or a header =1+2). A string cell is never evaluated, and the quote
        # prefix keeps it text when someone edits the cell in Excel.
        cell.data_type = "s"
        cell.quotePrefix = value.startswith(FORMULA_PREFIXES)
    elif number_format and isinstance(value, int | float):
        cell.number_format = number_format
    if bold:
        cell.font = HEADER_FONT
    return cell


def _column_widths(rows: list[list[Any]]) -> list[float]:
    widths: list[float] = []
    for row in rows:
        for index, value in enumerate(row):
            text = "" if value is None else str(value)
            # East Asian characters take about two columns of Excel's width unit.
            width = sum(2 if ord(ch) > WIDE_CHARACTER_FROM else 1 for ch in text)
            if index == len(widths):
                widths.append(MIN_COLUMN_WIDTH)
            widths[index] = min(MAX_COLUMN_WIDTH, max(widths[index], width + WIDTH_PADDING))
    return widths


def _means_chart(sheet_name: str, subject_count: int) -> BarChart:
    """A native Excel bar chart of each subject's mean, over the Subjects table."""
    chart = BarChart()
    chart.type = "col"
    chart.title = _("Mean score by subject")
    chart.y_axis.title = _("Mean")
    chart.y_axis.scaling.min = MIN_SCORE
    chart.y_axis.scaling.max = MAX_SCORE
    chart.legend = None
    last_row = subject_count + 1
    sheet = quote_sheetname(sheet_name)
    chart.add_data(Reference(worksheet=None, range_string=f"{sheet}!C1:C{last_row}"),
                   titles_from_data=True)
    # Subject names are text: a string reference, or Excel labels the bars 1, 2, 3.
    chart.series[0].cat = AxDataSource(strRef=StrRef(f=f"{sheet}!$A$2:$A${last_row}"))
    chart.width, chart.height = CHART_WIDTH_CM, CHART_HEIGHT_CM
    return chart


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _tidy(number: float) -> Number:
    """Two decimals; a whole number as an int, so 90.0 reads 90 in JSON and in the report."""
    rounded = round(number, 2)
    return int(rounded) if rounded.is_integer() else rounded
