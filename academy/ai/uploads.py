"""Checks on an uploaded spreadsheet before anything is stored or queued (`POST /api/ai/jobs/`).

A real .xlsx is recognised by its content, not its name: a zip holding the parts of a
workbook, that openpyxl opens, whose first sheet has no more rows than allowed. Each refusal
is an `UploadRefused` with a stable code and a message meant for the person uploading.
"""

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import openpyxl

# The parts every .xlsx workbook has (ECMA-376, Part 2 and SpreadsheetML).
REQUIRED_XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
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


class UploadRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SheetInfo:
    sheet_name: str
    data_rows: int


def check_xlsx(
    content: IO[bytes], *, size_bytes: int, max_bytes: int, max_uncompressed_bytes: int,
    max_rows: int,
) -> SheetInfo:
    """Refuse anything but a workbook within the limits; `max_rows` counts rows after the header."""
    if size_bytes > max_bytes:
        raise UploadRefused("file_too_large", f"The file is larger than {max_bytes} bytes.")
    if size_bytes == 0:
        raise UploadRefused("not_xlsx", "The file is empty.")
    not_xlsx = UploadRefused("not_xlsx", "The file is not an Excel workbook (.xlsx).")
    content.seek(0)
    if not zipfile.is_zipfile(content):
        raise not_xlsx
    content.seek(0)
    try:
        with zipfile.ZipFile(content) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise not_xlsx from None
    names = {info.filename for info in infos}
    if not all(part in names for part in REQUIRED_XLSX_PARTS):
        raise not_xlsx
    if sum(info.file_size for info in infos) > max_uncompressed_bytes:
        raise UploadRefused("file_too_large", "The workbook expands to more than allowed.")
    content.seek(0)
    try:
        info = _count_rows(content, max_rows)
    except UploadRefused:
        raise
    except Exception:
        # openpyxl raises many kinds of errors on malformed parts; all mean "not a workbook".
        raise not_xlsx from None
    finally:
        content.seek(0)
    return info


def sheet_rows(sheet: Any) -> Iterator[tuple[Any, ...]]:
    """A read-only sheet's rows as values, at most `MAX_READ_COLUMNS` each.

    The declared dimension is ignored (reset): openpyxl then reads only the rows present, and
    each row is cut at `MAX_READ_COLUMNS`, so memory follows the cells really there.
    """
    sheet.reset_dimensions()
    yield from sheet.iter_rows(max_col=MAX_READ_COLUMNS, values_only=True)


def _count_rows(content: IO[bytes], max_rows: int) -> SheetInfo:
    workbook = openpyxl.load_workbook(content, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        rows = 0
        span_limit = max_rows * SPAN_FACTOR + SPAN_SLACK_ROWS
        for span, values in enumerate(sheet_rows(sheet), start=1):
            if span > span_limit:
                raise UploadRefused(
                    "too_many_rows", f"The sheet spans more than {span_limit} rows."
                )
            if any(value not in (None, "") for value in values):
                if rows == 0 and values[-1] not in (None, ""):
                    raise UploadRefused(
                        "too_many_columns",
                        f"The header has more than {MAX_SUBJECT_COLUMNS} subject columns.",
                    )
                rows += 1
                if rows > max_rows + 1:  # the header plus the allowed data rows
                    raise UploadRefused(
                        "too_many_rows", f"The sheet has more than {max_rows} data rows."
                    )
        return SheetInfo(sheet_name=sheet.title, data_rows=max(0, rows - 1))
    finally:
        workbook.close()
