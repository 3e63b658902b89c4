"""Build the library's wheel and sdist (`make dist`): stage packaging/jobbox/pyproject.toml,
its README (the wheel's long description: a short text of the library's own, not the
repository's README) and jobbox/ in a temporary folder, then PEP 517-build it there.

A staged copy keeps the service (academy/, bench/, tests/) out of the distribution by
construction: the build never sees it. Usage: `python packaging/build_dist.py [OUT_DIR]`.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "packaging" / "jobbox"
# Bytecode and editor droppings are not sources.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*~", ".*")


def stage(into: Path) -> Path:
    """The library's source tree as the build sees it."""
    shutil.copy(PROJECT / "pyproject.toml", into / "pyproject.toml")
    shutil.copy(PROJECT / "README.md", into / "README.md")
    shutil.copytree(ROOT / "jobbox", into / "jobbox", ignore=IGNORED)
    return into


def build(out_dir: Path) -> list[Path]:
    """Build the sdist, then the wheel from it (as an installer would); return both."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("jobbox-*.whl"), *out_dir.glob("jobbox-*.tar.gz")]:
        stale.unlink()  # a rebuild of the same version must not leave the old files beside it
    with tempfile.TemporaryDirectory(prefix="jobbox-dist-") as staging:
        subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out_dir), str(stage(Path(staging)))],
            check=True, stdout=subprocess.DEVNULL,
        )
    return sorted([*out_dir.glob("jobbox-*.tar.gz"), *out_dir.glob("jobbox-*.whl")])


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist").resolve()
    for path in build(out_dir):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
