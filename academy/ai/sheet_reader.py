"""The score sheet's parse, on the worker, in a child process under CPU and memory limits.

openpyxl turns every shared string, row and cell into Python objects; a workbook crafted to
be cheap to upload and dear to parse would otherwise take a worker's CPU and memory with it
(and, in a web request, a web worker's). So `read_sheet_limited` runs the parse in
`python -m academy.ai.sheet_reader`, the way ffmpeg runs for videos: `setrlimit` on CPU seconds
and address space in the child, a wall-clock timeout in the parent
(academy.videos.media_limits). The child checks the package's budgets again before parsing
(academy.ai.uploads), then reads the first sheet's non-empty rows within the row, span and
column limits and prints them as JSON. Every way it can stop is a refusal that says why.
"""

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings

from academy.ai.uploads import PackageBudget, UploadRefused, check_xlsx

# Blank rows between data rows are fine, but a sheet whose rows sit a million apart would
# have openpyxl yield every empty row in between: the span is bounded too.
SPAN_FACTOR = 2
SPAN_SLACK_ROWS = 1000
# Columns read from each row: the student column and up to this many subjects. A sheet's
# declared dimension (<dimension ref="A1:XFD100"/>) would otherwise have openpyxl pad every
# row to 16,384 cells; what is read is bounded by this, whatever the file declares. 50
# subjects is a whole timetable with room to spare.
MAX_SUBJECT_COLUMNS = 50
MAX_READ_COLUMNS = 1 + MAX_SUBJECT_COLUMNS + 1  # one more, to see that a header has too many
# The child's exit status when Python ran out of its address space (MemoryError).
OUT_OF_MEMORY_EXIT_STATUS = 3
MIB = 1024 * 1024

Rows = list[tuple[int, tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one sheet's parse may cost (settings AI_*, academy.settings)."""

    cpu_seconds: int
    timeout_seconds: int
    memory_bytes: int

    @classmethod
    def from_settings(cls) -> "ReadLimits":

        return cls(cpu_seconds=settings.AI_SHEET_READ_CPU_SECONDS,
                   timeout_seconds=settings.AI_SHEET_READ_TIMEOUT_SECONDS,
                   memory_bytes=settings.AI_SHEET_READ_MEMORY_BYTES)


def read_sheet_limited(data: bytes, *, max_rows: int, budget: PackageBudget,
                       limits: ReadLimits) -> tuple[str, Rows]:
    """The first sheet's title and non-empty rows (row number, values), parsed in a child
    under `limits`; `UploadRefused` says why a sheet could not be read."""
    from academy.videos.media_limits import limited_child, ran_out_of_cpu

    options = json.dumps({"max_rows": max_rows, "budget": budget.as_dict()})
    process = subprocess.Popen(
        [sys.executable, "-m", "academy.ai.sheet_reader", options],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        preexec_fn=limited_child(cpu_seconds=limits.cpu_seconds,
                                 memory_bytes=limits.memory_bytes),
    )
    try:
        output, _ = process.communicate(data, timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise UploadRefused("file_too_large", f"Reading the sheet took longer than "
                                              f"{limits.timeout_seconds} seconds.") from None
    if ran_out_of_cpu(process.returncode):
        raise UploadRefused("file_too_large", f"Reading the sheet needed more than "
                                              f"{limits.cpu_seconds} seconds of CPU.")
    if process.returncode == OUT_OF_MEMORY_EXIT_STATUS:
        raise UploadRefused("file_too_large", f"Reading the sheet needed more than "
                                              f"{limits.memory_bytes // MIB} MiB of memory.")
    if process.returncode != 0:
        raise UploadRefused("not_xlsx", "The workbook could not be read.")
    return _answer(json.loads(output))


def _answer(answer: dict[str, Any]) -> tuple[str, Rows]:
    if "refused" in answer:
        raise UploadRefused(answer["refused"], answer["message"])
    return answer["sheet"], [(number, tuple(values)) for number, values in answer["rows"]]


def sheet_rows(sheet: Any) -> Any:
    """A read-only sheet's rows as values, at most `MAX_READ_COLUMNS` each.

    The declared dimension is ignored (reset): openpyxl then reads only the rows present, and
    each row is cut at `MAX_READ_COLUMNS`, so memory follows the cells really there.
    """
    sheet.reset_dimensions()
    yield from sheet.iter_rows(max_col=MAX_READ_COLUMNS, values_only=True)


def read_sheet(content: IO[bytes], max_rows: int) -> tuple[str, Rows]:
    """The parse itself (in the child): the first sheet's non-empty rows within the limits."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(content, read_only=True, data_only=True)
    except MemoryError:
        raise
    except Exception:
        # openpyxl raises many kinds of errors on malformed parts; all mean "not a workbook".
        raise UploadRefused("not_xlsx", "The file is not an Excel workbook (.xlsx).") from None
    try:
        sheet = workbook.worksheets[0]
        return sheet.title, _rows_within_limits(sheet, max_rows)
    finally:
        workbook.close()


def _rows_within_limits(sheet: Any, max_rows: int) -> Rows:
    rows: Rows = []
    span_limit = max_rows * SPAN_FACTOR + SPAN_SLACK_ROWS
    for number, values in enumerate(sheet_rows(sheet), start=1):
        if number > span_limit:
            raise UploadRefused("too_many_rows", f"The sheet spans more than {span_limit} rows.")
        if all(_blank(value) for value in values):
            continue
        if not rows and not _blank(values[-1]):
            raise UploadRefused("too_many_columns", f"The header has more than "
                                                    f"{MAX_SUBJECT_COLUMNS} subject columns.")
        rows.append((number, values))
        if len(rows) > max_rows + 1:  # the header plus the allowed data rows
            raise UploadRefused("too_many_rows", f"The sheet has more than {max_rows} data rows.")
    return rows


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _plain(value: Any) -> Any:
    """A cell's value as JSON carries it: numbers, text, booleans and blanks as they are;
    anything else (a date, a time) as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def main() -> int:
    options = json.loads(sys.argv[1])
    data = sys.stdin.buffer.read()
    try:
        check_xlsx(io.BytesIO(data), size_bytes=len(data),
                   budget=PackageBudget(**options["budget"]))
        title, rows = read_sheet(io.BytesIO(data), options["max_rows"])
    except UploadRefused as refused:
        json.dump({"refused": refused.code, "message": refused.message}, sys.stdout)
        return 0
    except MemoryError:
        os._exit(OUT_OF_MEMORY_EXIT_STATUS)  # no clean-up: there is no memory left for it
    json.dump({"sheet": title,
               "rows": [[number, [_plain(value) for value in values]] for number, values in rows]},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
