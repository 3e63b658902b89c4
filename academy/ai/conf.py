"""Settings of the AI jobs, from Django's `AI_JOBS` dict, read on every access (override_settings).

Serves DESIGN.md invariant 1 (the result in Redis up to a size) and the upload limits of
`POST /api/ai/jobs/`.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # A score sheet of a whole academy (thousands of rows) is a few hundred KiB; 5 MiB leaves
    # room for formatting while keeping uploads cheap to hold and to check.
    "UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    # An .xlsx is a zip: what it expands to is bounded too (a zip bomb is refused, not read).
    "UPLOAD_MAX_UNCOMPRESSED_BYTES": 50 * 1024 * 1024,
    # --- The .xlsx package, judged before any parse (academy.ai.uploads) ---
    # Zip entries: a workbook has a dozen parts, a few hundred with many sheets and images.
    "XLSX_MAX_PARTS": 1000,
    # Shared strings: at most one per cell read (10,001 rows of 52 columns is 520,052),
    # rounded up; ten million empty ones would cost a gigabyte once parsed.
    "XLSX_SHARED_STRINGS_MAX_ENTRIES": 600_000,
    # A whole academy's names and subjects are a few hundred KB of shared strings; 16 MiB is
    # dozens of times that and parses within the reader's memory budget.
    "XLSX_SHARED_STRINGS_MAX_BYTES": 16 * 1024 * 1024,
    # One worksheet part: 10,001 rows of 52 cells at about 40 bytes of XML each is ~21 MB.
    "XLSX_SHEET_MAX_BYTES": 32 * 1024 * 1024,
    # Styles: a heavily formatted workbook's are a few hundred KB.
    "XLSX_STYLES_MAX_BYTES": 4 * 1024 * 1024,
    # --- The sheet's parse, on the worker in a child process (academy.ai.sheet_reader) ---
    # CPU seconds: a 10,000-row sheet parses in a few seconds; 60 leaves room on a busy box.
    "SHEET_READ_CPU_SECONDS": 60,
    # Wall-clock seconds before the child is killed (it may wait for a CPU on a busy worker).
    "SHEET_READ_TIMEOUT_SECONDS": 180,
    # Address space of the child: Python and openpyxl take ~150 MB; a full 10,000-row sheet
    # ~100 MB more. 1 GiB refuses the gigabyte a shared-strings bomb would take.
    "SHEET_READ_MEMORY_BYTES": 1024 * 1024 * 1024,
    # Data rows (after the header) a sheet may hold: a worker grades 10,000 rows in seconds
    # and the result stays a few MiB.
    "MAX_ROWS": 10_000,
    # A result whose JSON fits rides in the Redis snapshot, so a DONE poll costs zero SQL;
    # larger ones stay out of Redis to keep its memory predictable.
    "RESULT_INLINE_MAX_BYTES": 64 * 1024,
    # A result too large for Redis is read from the database at most once per this window per
    # process; clients poll about once a second, so 30 s turns 30 reads into one.
    "RESULT_WINDOW_SECONDS": 30,
    # A result over the inline limit travels as a summary: each long list (students, bad rows)
    # cut to this many items, the rest read page by page. 20 is one screen of a table.
    "RESULT_PREVIEW_ITEMS": 20,
    # Items per page of `GET /api/ai/jobs/<id>/result/<section>/`, and the most a client may
    # ask for: 500 rows of 50 subjects stay around 100 KiB of JSON.
    "RESULT_PAGE_SIZE": 100,
    "RESULT_PAGE_SIZE_MAX": 500,
}


def get(name: str) -> Any:
    return getattr(settings, "AI_JOBS", {}).get(name, DEFAULTS[name])
