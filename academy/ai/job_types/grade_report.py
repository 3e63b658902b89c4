"""`excel.grade_report`: a score sheet in, per-student and per-subject results out.

The sheet (the first one of the workbook): its first non-empty row is the header, a student
column then one column per subject; every following row is one student. Every row is
validated; a bad row is reported by its row number and reason and left out of the figures,
never a crash. The result has each valid student's total, average and rank (ties share a
rank: 1, 2, 2, 4), each subject's count, mean, median, min, max and standard deviation, and
the bad rows; the same tables are written to a downloadable .xlsx report.
"""

import io
import math
import statistics
from dataclasses import dataclass
from typing import IO, Any

import openpyxl
from openpyxl.utils import get_column_letter

from academy.ai import conf
from academy.ai.job_types import JobContext, JobFailed, JobOutput, JobType
from academy.ai.uploads import check_xlsx

MIN_SCORE = 0
MAX_SCORE = 100
# Progress is reported about this many times per step: often enough to watch, rare enough
# that a 10,000-row sheet costs a few dozen Redis calls, not thousands.
REPORTS_PER_STEP = 20
# How many bad rows an error message quotes when no row at all was valid.
QUOTED_BAD_ROWS = 5

Number = int | float


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
        info = check_xlsx(
            content, size_bytes=size_bytes, max_bytes=conf.get("UPLOAD_MAX_BYTES"),
            max_uncompressed_bytes=conf.get("UPLOAD_MAX_UNCOMPRESSED_BYTES"),
            max_rows=conf.get("MAX_ROWS"),
        )
        return {"sheet": info.sheet_name, "data_rows": info.data_rows}

    def run(self, context: JobContext) -> JobOutput:
        context.report_step(1, 0)
        limit = conf.get("UPLOAD_MAX_BYTES")
        with context.open_upload() as upload:
            # Read whole, within the upload limit: openpyxl needs a seekable file, and a remote
            # storage's stream need not be one.
            data = upload.read(limit + 1)
        if len(data) > limit:
            raise JobFailed(f"The file is larger than {limit} bytes.")
        sheet_name, rows = read_sheet(io.BytesIO(data))
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
        report = write_report(subjects, ranked, subject_stats, bad_rows)
        context.report_step(5, 100)
        return JobOutput(result=result, report=report)


def read_sheet(content: IO[bytes]) -> tuple[str, list[tuple[int, tuple[Any, ...]]]]:
    """The first sheet's non-empty rows as (row number, values)."""
    try:
        workbook = openpyxl.load_workbook(content, read_only=True, data_only=True)
    except Exception:
        # The upload was checked; a file that no longer opens is a failure to report, not a bug.
        raise JobFailed("The workbook could not be read.") from None
    try:
        sheet = workbook.worksheets[0]
        rows = [
            (number, values)
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
            if any(not _blank(value) for value in values)
        ]
        return sheet.title, rows
    finally:
        workbook.close()


def parse_header(number: int, values: tuple[Any, ...]) -> list[str]:
    """The subjects the header row (the first non-empty one) names after the student column."""
    cells = list(values)
    while cells and _blank(cells[-1]):
        cells.pop()
    subjects = [str(value).strip() if not _blank(value) else "" for value in cells[1:]]
    if not subjects:
        raise JobFailed(f"Row {number} (the header) must name the student column and at "
                        "least one subject column.")
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
        if position % every == 0:
            context.report_step(2, 100 * position / len(rows))
        problems: list[str] = []
        name = "" if _blank(values[0]) else str(values[0]).strip()
        if not name:
            problems.append("no student name")
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
    workbook = openpyxl.Workbook(write_only=True)
    students_sheet = workbook.create_sheet("Students")
    students_sheet.append(["Rank", "Student", *subjects, "Total", "Average"])
    for entry in ranked:
        students_sheet.append([entry["rank"], entry["student"],
                               *(entry["scores"][s] for s in subjects),
                               entry["total"], entry["average"]])
    subjects_sheet = workbook.create_sheet("Subjects")
    subjects_sheet.append(["Subject", "Count", "Mean", "Median", "Min", "Max", "Std dev"])
    for stats in subject_stats:
        subjects_sheet.append([stats["subject"], stats["count"], stats["mean"],
                               stats["median"], stats["min"], stats["max"], stats["stdev"]])
    bad_sheet = workbook.create_sheet("Bad rows")
    bad_sheet.append(["Row", "Reason"])
    for bad in bad_rows:
        bad_sheet.append([bad.row, bad.reason])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _tidy(number: float) -> Number:
    """Two decimals; a whole number as an int, so 90.0 reads 90 in JSON and in the report."""
    rounded = round(number, 2)
    return int(rounded) if rounded.is_integer() else rounded
