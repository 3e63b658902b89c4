"""The library layer stands alone: nothing under tests/library imports the service, and the
process running these tests never loaded it."""

import ast
import sys
from pathlib import Path

from django.conf import settings

LAYER_DIR = Path(__file__).resolve().parent
SERVICE_PACKAGES = {"academy", "bench"}


def imported_top_level_names(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def helper_modules_imported(path: Path) -> set[Path]:
    """The shared `tests.x` helpers a file imports (they must stand alone too)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
            candidate = LAYER_DIR.parent.joinpath(*node.module.split(".")[1:]).with_suffix(".py")
            if candidate.exists():
                found.add(candidate)
    return found


def test_no_file_of_the_layer_nor_a_helper_it_uses_imports_the_service():
    files = set(LAYER_DIR.rglob("*.py"))
    for path in list(files):
        files |= helper_modules_imported(path)
    offenders = {str(path.relative_to(LAYER_DIR.parent)): sorted(names)
                 for path in sorted(files)
                 if (names := imported_top_level_names(path) & SERVICE_PACKAGES)}
    assert offenders == {}


def test_the_process_never_loaded_the_service():
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in SERVICE_PACKAGES)
    assert loaded == []
    assert not any(app.split(".")[0] in SERVICE_PACKAGES for app in settings.INSTALLED_APPS)
