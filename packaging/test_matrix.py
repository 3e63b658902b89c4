"""`make test-matrix`: the library's tests once per supported (Django, Python, redis-py) pair.

Each pair gets a virtualenv of its own under `.matrix/` (gitignored, kept between runs and
rebuilt only when what it should hold changes), holding the library's declared dependencies
(packaging/jobbox/pyproject.toml) with Django and redis-py pinned to the pair's series, plus
the test tools. The tests run from this checkout, so the library under test is the working
tree. Prints one line per pair with each suite's pytest summary; exits non-zero if any fails.

Then, per pair, the library's wheel is installed (with its `tasks` extra) into a fresh
virtualenv beside that Django and redis-py, and a new `django-admin startproject` with the
README's settings lines must pass `manage.py check`: what an adopter on that stack gets.

Usage: `python packaging/test_matrix.py [TEST_PATH ...]` (default: tests/library tests/contrib).
A test path `tests/<name>` runs with `--ds=tests.<name>.settings` when that module exists; a
path that does not exist is reported as absent and does not fail the run.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".matrix"
DEFAULT_TEST_PATHS = ["tests/library", "tests/contrib"]
# Test tools and what the contrib layer's tests need beside the library's own dependencies.
TEST_REQUIREMENTS = [
    "pytest>=8,<10",
    "pytest-django>=4.9,<5",
    "pytest-timeout>=2.3,<3",
    "hypothesis>=6.100,<7",
    "psycopg[binary]>=3.2,<4",
    "dj-database-url>=2.2,<4",
    "django-tasks-db>=0.13,<1",
]
# Long enough for the slowest suite on a shared two-core machine, short enough that a hung
# test cannot hold CI: pytest-timeout still bounds each test (the root pyproject's 300 s).
SUITE_TIMEOUT_SECONDS = 1200


@dataclass(frozen=True)
class Pair:
    """One supported combination: a Django series on a Python it supports, with a redis-py."""

    django: str
    python: str
    redis: str

    @property
    def name(self) -> str:
        return f"django{self.django}-py{self.python}-redis{self.redis}"

    def requirements(self) -> list[str]:
        pins = [f"django=={self.django}.*", f"redis=={self.redis}.*"]
        if self.django.startswith("5."):
            # Django 5.2 has no django.tasks: the backport provides it.
            pins.append("django-tasks>=0.12,<1")
        return [*library_dependencies(), *TEST_REQUIREMENTS, *pins]


# Every supported Django series once, each on a Python it supports; redis-py's oldest and
# newest supported series each at least once (the README's support range).
PAIRS = [
    Pair(django="5.2", python="3.11", redis="5"),
    Pair(django="6.0", python="3.12", redis="7"),
    Pair(django="6.1", python="3.13", redis="8"),
]


def library_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "packaging" / "jobbox" / "pyproject.toml").read_text())
    return list(project["project"]["dependencies"])


def find_python(version: str) -> tuple[str, dict[str, str]]:
    """The interpreter for `version` and the environment to run it in: a pyenv build of that
    series when pyenv has one (its shims need PYENV_VERSION), else `pythonX.Y` on PATH."""
    env = dict(os.environ)
    pyenv = shutil.which("pyenv")
    if pyenv:
        bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        builds = [line.strip() for line in bare.stdout.splitlines()
                  if re.fullmatch(rf"{re.escape(version)}\.\d+", line.strip())]
        if builds:
            newest = max(builds, key=lambda b: tuple(int(p) for p in b.split(".")))
            prefix = subprocess.run([pyenv, "prefix", newest], capture_output=True, text=True)
            return str(Path(prefix.stdout.strip()) / "bin" / "python"), env
    found = shutil.which(f"python{version}")
    if found is None:
        raise SystemExit(f"test-matrix: no Python {version} (install it, e.g. with pyenv)")
    return found, env


def ensure_venv(pair: Pair) -> Path:
    """The pair's virtualenv, built once per set of requirements."""
    venv = CACHE / pair.name
    requirements = pair.requirements()
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    stamp = venv / ".requirements-sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    python, env = find_python(pair.python)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    *requirements], check=True)
    stamp.write_text(digest)
    return venv


def versions_in(venv: Path) -> str:
    probe = ("import sys, django, redis; "
             "print(f'django {django.get_version()} · python {sys.version.split()[0]} · "
             "redis-py {redis.__version__}')")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def settings_module(test_path: str) -> str | None:
    path = ROOT / test_path
    if (path / "settings.py").exists():
        return ".".join(Path(test_path).parts) + ".settings"
    return None


def run_suite(venv: Path, test_path: str) -> tuple[bool, str]:
    """(passed, pytest's summary line) for one test path in one pair's virtualenv."""
    if not (ROOT / test_path).exists():
        return False, "absent (a suite the matrix was asked for is missing)"
    command = [str(venv / "bin" / "python"), "-m", "pytest", test_path, "-q",
               "-p", "no:cacheprovider",
               # Only the suite's own conftest files: the service's (above it) needs the service.
               f"--confcutdir={test_path}"]
    settings = settings_module(test_path)
    if settings:
        command.append(f"--ds={settings}")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=SUITE_TIMEOUT_SECONDS)
    lines = [line.strip("= ") for line in done.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines)
                    if re.search(r"\b(passed|failed|error|errors|no tests ran)\b", line)),
                   f"pytest exited {done.returncode}")
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-3000:])
    return done.returncode == 0, summary


# A new project's settings: the README's adoption lines that need no app of the project's
# own, plus the Tasks framework app (`jobbox[tasks]`).
ADOPTER_SETTINGS = """
import os
INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "jobbox", "jobbox.contrib.tasks"]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
"""
# Installing Django, DRF, redis... into a fresh virtualenv (pip's cache makes repeats quick).
INSTALL_TIMEOUT_SECONDS = 600
CHECK_TIMEOUT_SECONDS = 120


def build_wheel(out_dir: Path) -> Path:
    """The library's wheel, built as `make dist` builds it (packaging/build_dist.py's staging)."""
    sys.path.insert(0, str(ROOT / "packaging"))
    import build_dist  # packaging/ is a folder of scripts, not a package

    with tempfile.TemporaryDirectory(prefix="jobbox-matrix-stage-") as staging:
        source = build_dist.stage(Path(staging))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", str(out_dir), str(source)], check=True)
    (wheel,) = out_dir.glob("jobbox-*.whl")
    return wheel


def check_adoption(pair: Pair, wheel: Path) -> tuple[bool, str]:
    """The wheel in a fresh virtualenv beside the pair's Django and redis-py; a new project
    with the adoption settings passes `manage.py check`."""
    python, env = find_python(pair.python)
    with tempfile.TemporaryDirectory(prefix="jobbox-matrix-adopter-") as folder:
        venv, site = Path(folder) / "venv", Path(folder) / "mysite"
        subprocess.run([python, "-m", "venv", str(venv)], check=True, env=env)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        f"{wheel}[tasks]", f"django=={pair.django}.*", f"redis=={pair.redis}.*"],
                       check=True, timeout=INSTALL_TIMEOUT_SECONDS)
        site.mkdir()
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")}
        subprocess.run([str(venv / "bin" / "django-admin"), "startproject", "mysite", str(site)],
                       check=True, env=clean)
        with (site / "mysite" / "settings.py").open("a") as settings:
            settings.write(ADOPTER_SETTINGS)
        done = subprocess.run([str(venv / "bin" / "python"), "manage.py", "check"], cwd=site,
                              env=clean, capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_SECONDS)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        return False, "wheel: manage.py check failed"
    return True, "wheel: manage.py check ok"


def main(test_paths: list[str]) -> int:
    CACHE.mkdir(exist_ok=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="jobbox-matrix-wheel-") as wheel_dir:
        wheel = build_wheel(Path(wheel_dir))
        for pair in PAIRS:
            venv = ensure_venv(pair)
            results = [(path, *run_suite(venv, path)) for path in test_paths]
            adopted, adoption = check_adoption(pair, wheel)
            failed |= not adopted or not all(ok for _, ok, _ in results)
            parts = "; ".join(f"{path}: {summary}" for path, _, summary in results)
            print(f"{versions_in(venv)} | {parts} | {adoption}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEFAULT_TEST_PATHS))
