"""A spreadsheet is judged from its package before any parse, and parsed only on the worker
under CPU and memory limits (academy.ai.uploads, academy.ai.sheet_reader): a shared-strings
bomb of ten million empty entries (an 81 KB upload, 50 MB of XML, a gigabyte once parsed)
costs the web request a look at the zip's directory."""

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from academy.ai import services
from academy.ai.models import AIJobModel
from tests.ai_helpers import sheet_bytes, submit

pytestmark = pytest.mark.django_db(transaction=True)

BOMB_ENTRIES = 10_000_000
# Empty entries written per chunk while the bomb streams into its zip.
ENTRIES_PER_CHUNK = 100_000
MIB = 1024 * 1024
SPREADSHEET_NAMESPACE = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
# What names the shared-strings part in a package (ECMA-376): its content type and the
# workbook's relationship to it. Readers find the part through these.
SHARED_STRINGS_CONTENT_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
SHARED_STRINGS_RELATIONSHIP = (
    b'<Relationship Id="rIdStrings" Type="http://schemas.openxmlformats.org/officeDocument/'
    b'2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path


def shared_strings_bomb(path: Path, entries: int, *, declare_count: bool) -> bytes:
    """A real one-sheet workbook whose shared-strings part holds `entries` empty strings,
    streamed into the zip (never held whole in memory)."""
    workbook = zipfile.ZipFile(io.BytesIO(sheet_bytes([["Student", "Math"], ["Kim", 90]])))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in workbook.infolist():
            data = workbook.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", SHARED_STRINGS_CONTENT_TYPE)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", SHARED_STRINGS_RELATIONSHIP)
            if info.filename != "xl/sharedStrings.xml":
                bomb.writestr(info.filename, data)
        with bomb.open("xl/sharedStrings.xml", "w") as part:
            counts = f' count="{entries}" uniqueCount="{entries}"' if declare_count else ""
            part.write(f'<sst xmlns="{SPREADSHEET_NAMESPACE}"{counts}>'.encode())
            for _ in range(entries // ENTRIES_PER_CHUNK):
                part.write(b"<si/>" * ENTRIES_PER_CHUNK)
            part.write(b"</sst>")
    return path.read_bytes()


@pytest.fixture
def nothing_parsed_here(monkeypatch) -> None:
    """openpyxl refuses to open anything in this process: the web request must not need it."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a workbook was parsed in the web request")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)


def run_on_worker(job_id: str) -> AIJobModel:
    services.run_ai_job(job_id=job_id, worker_id="in-process")
    return AIJobModel.objects.get(job_id=job_id)


def test_a_bomb_of_10_million_shared_strings_is_refused_from_its_package_unparsed(
        alice, media, nothing_parsed_here):
    content = shared_strings_bomb(media / "bomb.xlsx", BOMB_ENTRIES, declare_count=True)
    assert len(content) < 200_000  # cheap to send: the attack's whole point
    response = submit(alice, content, language="en")
    assert (response.status_code, response.json()["code"]) == (400, "file_too_large")
    assert "shared strings part" in response.json()["detail"]
    assert AIJobModel.objects.count() == 0


def test_shared_strings_are_counted_whatever_the_part_declares(alice, media, settings,
                                                               nothing_parsed_here):
    settings.AI_XLSX_SHARED_STRINGS_MAX_ENTRIES = 1000
    content = shared_strings_bomb(media / "quiet.xlsx", ENTRIES_PER_CHUNK, declare_count=False)
    response = submit(alice, content)
    assert (response.status_code, response.json()["code"]) == (400, "file_too_large")
    assert response.json()["detail"] == ("The workbook's shared strings part holds more than "
                                         "1,000 entries; at most 1,000 are read.")


def test_a_declared_count_over_the_budget_is_refused_before_the_entries_are_read(
        alice, media, settings, nothing_parsed_here):
    settings.AI_XLSX_SHARED_STRINGS_MAX_ENTRIES = 1000
    content = shared_strings_bomb(media / "loud.xlsx", ENTRIES_PER_CHUNK, declare_count=True)
    response = submit(alice, content)
    assert response.json()["detail"] == ("The workbook's shared strings part declares "
                                         "100,000 entries; at most 1,000 are read.")


def test_a_good_sheet_is_accepted_unparsed_and_graded_in_the_workers_child(
        alice, media, nothing_parsed_here):
    response = submit(alice, sheet_bytes([["Student", "Math"], ["Kim", 90], ["Lee", 70]]))
    assert response.status_code == 201
    job = run_on_worker(response.json()["job_id"])
    assert job.status == "DONE"
    assert job.result["summary"]["valid_rows"] == 2


@pytest.mark.e2e  # builds a 50 MB bomb and parses it until a real CPU or memory limit stops it
@pytest.mark.parametrize(("limit", "reason"), [
    ({"SHEET_READ_MEMORY_BYTES": 250 * MIB}, "needed more than 250 MiB of memory"),
    ({"SHEET_READ_CPU_SECONDS": 1}, "needed more than 1 seconds of CPU"),
])
def test_a_parse_past_its_budget_fails_on_the_worker_saying_why(alice, media, settings, limit,
                                                                 reason):
    # Package budgets that let the bomb through, so the parse's own limit is what stops it.
    budgets = {"XLSX_SHARED_STRINGS_MAX_ENTRIES": BOMB_ENTRIES * 2,
               "XLSX_SHARED_STRINGS_MAX_BYTES": 60 * MIB,
               "UPLOAD_MAX_UNCOMPRESSED_BYTES": 60 * MIB, **limit}
    for name, value in budgets.items():
        setattr(settings, f"AI_{name}", value)
    response = submit(alice, shared_strings_bomb(media / "bomb.xlsx", BOMB_ENTRIES,
                                                 declare_count=True))
    assert response.status_code == 201
    job = run_on_worker(response.json()["job_id"])
    assert (job.status, job.error_message) == ("FAILED", f"Reading the sheet {reason}.")
