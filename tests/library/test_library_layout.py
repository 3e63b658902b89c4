"""The library's shape: imports run one way (no cycle, lazy imports included), the public API
is importable from `jobbox` itself, and the library knows nothing of the service."""

import ast
import importlib
from pathlib import Path

import jobbox

PACKAGE_DIR = Path(jobbox.__file__).parent
# A module a reader takes in at one sitting: past this, it holds more than one idea.
MODULE_MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every jobbox module `path` imports, anywhere in it (functions included). `from jobbox
    import X` counts as importing `jobbox.X` when X is a module, else the package itself."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    known = set(modules)
    return {name: imported_modules(path, known) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_library_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_module_of_the_library_is_over_450_lines():
    long = {name: lines for name, path in library_modules().items()
            if (lines := len(path.read_text().splitlines())) > MODULE_MAX_LINES}
    assert long == {}


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import():
    graph = import_graph()
    graph["jobbox.model"] = graph["jobbox.model"] | {"jobbox.read"}  # as a lazy import would
    assert find_cycle(graph) is not None


def test_no_module_of_the_library_imports_the_service_or_celery():
    for name, path in library_modules().items():
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        foreign = {m for m in imported if m.split(".")[0] in {"academy", "celery", "bench"}}
        assert not foreign, f"{name} imports {foreign}"


def test_every_public_name_imports_from_the_package():
    for name in jobbox.__all__:
        assert getattr(jobbox, name) is getattr(importlib.import_module(jobbox._PUBLIC[name]),
                                                name)


def test_the_package_ships_its_type_marker_and_lua_scripts():
    assert (PACKAGE_DIR / "py.typed").exists()
    assert sorted(p.stem for p in (PACKAGE_DIR / "lua").glob("*.lua"))


def test_the_public_names_are_exactly_those_listed():
    assert sorted(jobbox.__all__) == sorted(jobbox._PUBLIC)
