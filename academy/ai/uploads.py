"""Checks on an uploaded spreadsheet before anything is stored or queued (`POST /api/ai/jobs/`).

An .xlsx is a zip of XML parts, and what a part expands to decides what parsing it costs: an
81 KB file can hold ten million empty shared strings (52 MB of XML, a gigabyte of Python
objects once parsed). So the upload is judged from its package alone, before any XML parser
sees it: the zip's entry count, each part's declared uncompressed size (shared strings,
worksheets, styles, and all parts together) and the number of shared strings (their declared
count and the `<si>` entries really there, counted in a bounded stream). The web request does
only that; the sheet is parsed on the worker, in a child process under CPU and memory limits
(academy.ai.sheet_reader), which checks the package again first.

Each refusal is an `UploadRefused` with a stable code and a message meant for the person
uploading that names the budget it is over.
"""

import re
import zipfile
from dataclasses import dataclass, fields
from typing import IO

from django.conf import settings

# The parts every .xlsx workbook has (ECMA-376, Part 2 and SpreadsheetML).
REQUIRED_XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
SHARED_STRINGS_PART = re.compile(r"^xl/sharedStrings[^/]*\.xml$", re.IGNORECASE)
SHEET_PART = re.compile(r"^xl/worksheets/[^/]+\.xml$", re.IGNORECASE)
STYLES_PART = re.compile(r"^xl/styles[^/]*\.xml$", re.IGNORECASE)
# The shared strings' opening tag is read to find its declared counts: attributes come first,
# and no real writer puts more than a few hundred bytes before them.
SST_HEAD_BYTES = 4096
SST_OPENING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?sst\b[^>]*>")
SST_COUNT_ATTRIBUTE = re.compile(rb"\b(?:uniqueCount|count)\s*=\s*[\"'](\d{1,20})[\"']")
# One shared-string entry: `<si>`, `<si/>` or `<x:si ...>` (any namespace prefix).
SHARED_STRING_ENTRY = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")
# Decompressed bytes read at a time while counting entries; the tail kept between chunks is
# longer than any entry's opening tag, so no entry is missed or counted twice at a seam.
COUNT_CHUNK_BYTES = 1024 * 1024
ENTRY_TAG_OVERLAP_BYTES = 64
# An XML part starts with `<` (after a byte-order mark and blanks): a cheap sniff that turns
# a renamed text file into "not a workbook" without a parser.
XML_SNIFF_BYTES = 64
UTF8_BOM = b"\xef\xbb\xbf"


class UploadRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PackageBudget:
    """What an .xlsx package may hold before it is parsed (settings AI_*, academy.settings)."""

    max_bytes: int  # the file itself
    max_uncompressed_bytes: int  # every part together, as the zip declares them
    max_parts: int
    shared_strings_max_entries: int
    shared_strings_max_bytes: int
    sheet_max_bytes: int  # each worksheet part
    styles_max_bytes: int

    @classmethod
    def from_settings(cls) -> "PackageBudget":
        return cls(
            max_bytes=settings.AI_UPLOAD_MAX_BYTES,
            max_uncompressed_bytes=settings.AI_UPLOAD_MAX_UNCOMPRESSED_BYTES,
            max_parts=settings.AI_XLSX_MAX_PARTS,
            shared_strings_max_entries=settings.AI_XLSX_SHARED_STRINGS_MAX_ENTRIES,
            shared_strings_max_bytes=settings.AI_XLSX_SHARED_STRINGS_MAX_BYTES,
            sheet_max_bytes=settings.AI_XLSX_SHEET_MAX_BYTES,
            styles_max_bytes=settings.AI_XLSX_STYLES_MAX_BYTES,
        )

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def check_xlsx(content: IO[bytes], *, size_bytes: int, budget: PackageBudget) -> None:
    """Refuse anything but a workbook package within `budget`; parses no XML."""
    if size_bytes > budget.max_bytes:
        raise UploadRefused("file_too_large", f"The file is larger than {budget.max_bytes} bytes.")
    if size_bytes == 0:
        raise UploadRefused("not_xlsx", "The file is empty.")
    content.seek(0)
    try:
        if not zipfile.is_zipfile(content):
            raise _not_xlsx()
        content.seek(0)
        with zipfile.ZipFile(content) as archive:
            _check_parts(archive, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        # A damaged zip (a wrong CRC, a truncated entry): not a workbook we can read.
        raise _not_xlsx() from None
    finally:
        content.seek(0)


def _not_xlsx() -> UploadRefused:
    return UploadRefused("not_xlsx", "The file is not an Excel workbook (.xlsx).")


def _over(what: str, limit: int, unit: str) -> UploadRefused:
    # "file_too_large": what the person can act on is the same, a smaller or simpler file;
    # the message names the budget.
    return UploadRefused("file_too_large", f"The workbook's {what} is over the limit of "
                                           f"{limit:,} {unit}.")


def _check_parts(archive: zipfile.ZipFile, budget: PackageBudget) -> None:
    infos = archive.infolist()
    if len(infos) > budget.max_parts:
        raise _over("number of parts", budget.max_parts, "parts")
    by_name = {info.filename: info for info in infos}
    if not all(part in by_name for part in REQUIRED_XLSX_PARTS):
        raise _not_xlsx()
    if sum(info.file_size for info in infos) > budget.max_uncompressed_bytes:
        raise _over("uncompressed size", budget.max_uncompressed_bytes, "bytes")
    for info in infos:
        _check_part_size(info, budget)
    _sniff_xml(archive, by_name["xl/workbook.xml"])
    for info in infos:
        if SHARED_STRINGS_PART.match(info.filename):
            _check_shared_strings(archive, info, budget.shared_strings_max_entries)


def _check_part_size(info: zipfile.ZipInfo, budget: PackageBudget) -> None:
    for pattern, limit, what in (
        (SHARED_STRINGS_PART, budget.shared_strings_max_bytes, "shared strings part"),
        (SHEET_PART, budget.sheet_max_bytes, "worksheet part"),
        (STYLES_PART, budget.styles_max_bytes, "styles part"),
    ):
        if pattern.match(info.filename) and info.file_size > limit:
            raise _over(f"{what} ({info.filename})", limit, "bytes uncompressed")


def _sniff_xml(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    with archive.open(info) as part:
        head = part.read(XML_SNIFF_BYTES).removeprefix(UTF8_BOM).lstrip()
    if not head.startswith(b"<"):
        raise _not_xlsx()


def _check_shared_strings(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                          max_entries: int) -> None:
    """The declared counts first (a few bytes), then the entries really there, counted in a
    stream: the declaration is optional and may lie. zipfile stops a part at its declared
    size (a longer one fails its check), so this reads what the size budget allowed."""
    with archive.open(info) as part:
        head = part.read(SST_HEAD_BYTES)
        opening = SST_OPENING_TAG.search(head)
        declared = max((int(n) for n in SST_COUNT_ATTRIBUTE.findall(
            opening.group(0) if opening else b"")), default=0)
        if declared > max_entries:
            raise _too_many_strings(f"declares {declared:,}", max_entries)
        counted = _count_entries(head, part, max_entries)
    if counted > max_entries:
        raise _too_many_strings(f"holds more than {max_entries:,}", max_entries)


def _count_entries(head: bytes, part: IO[bytes], max_entries: int) -> int:
    """Shared-string entries in the part, stopping as soon as there are more than allowed."""
    counted, carry, chunk = 0, b"", head
    while chunk:
        window = carry + chunk
        # Only entries that start before the carried tail are counted now; the tail is seen
        # again with the next chunk.
        cut = max(len(window) - ENTRY_TAG_OVERLAP_BYTES, 0)
        counted += sum(1 for found in SHARED_STRING_ENTRY.finditer(window) if found.start() < cut)
        if counted > max_entries:
            return counted
        carry, chunk = window[cut:], part.read(COUNT_CHUNK_BYTES)
    return counted + len(SHARED_STRING_ENTRY.findall(carry))


def _too_many_strings(found: str, max_entries: int) -> UploadRefused:
    return UploadRefused("file_too_large", f"The workbook's shared strings part {found} "
                                           f"entries; at most {max_entries:,} are read.")

