"""Settings of the AI jobs, from Django's `AI_JOBS` dict, read on every access (override_settings).

Serves docs/explanation/invariants.md, invariant 1 (the result in Redis up to a size) and the upload
limits of `POST /api/ai/jobs/`.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # A score sheet of a whole academy (thousands of rows) is a few hundred KiB; 5 MiB leaves
    # room for formatting while keeping uploads cheap to hold and to check.
    "UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    # An .xlsx is a zip: what it expands to is bounded too (a zip bomb is refused, not read).
    "UPLOAD_MAX_UNCOMPRESSED_BYTES": 50 * 1024 * 1024,
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
