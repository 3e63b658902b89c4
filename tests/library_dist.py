"""The library's wheel and sdist, built once per test run by `make dist`'s own script
(packaging/build_dist.py), for the tests that inspect or install them."""

import atexit
import functools
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))

import build_dist  # noqa: E402 - packaging/ is a folder of scripts, not a package


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@functools.cache
def library_dist() -> Dist:
    out_dir = Path(tempfile.mkdtemp(prefix="jobbox-test-dist-"))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    built = build_dist.build(out_dir)
    (wheel,) = [path for path in built if path.suffix == ".whl"]
    (sdist,) = [path for path in built if path.name.endswith(".tar.gz")]
    return Dist(wheel=wheel, sdist=sdist)
