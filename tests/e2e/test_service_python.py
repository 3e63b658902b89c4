"""Which Python `make` builds .venv with: 3.13, else 3.12 (the service's Django 6.1 needs
3.12+), from PATH or pyenv, else python3.11 with a notice; a .venv built by another Python
is built afresh. Fake interpreters (shell scripts printing their base prefix) on a PATH of
their own stand in for real ones."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHOOSER = ROOT / "packaging" / "service_python.sh"
FALLBACK_NOTICE = "the service runs on Django 5.2 LTS"


def executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def fake_python(folder: Path, name: str, prefix: str | None = None) -> Path:
    """An interpreter that runs (and prints `prefix` as its sys.base_prefix for the Makefile's
    check); with no prefix, one that fails like a pyenv shim of a version not selected."""
    body = f"echo {prefix}" if prefix else "echo 'pyenv: command not found' >&2; exit 127"
    return executable(folder / name, body)


def fake_pyenv(folder: Path, root: Path, versions: list[str]) -> None:
    listing = "\\n".join(versions)
    executable(folder / "pyenv", f'case "$1" in versions) printf "{listing}\\n";; '
                                 f'root) echo {root};; esac')
    for version in versions:
        series = ".".join(version.split(".")[:2])
        fake_python(root / "versions" / version / "bin", f"python{series}", f"/pyenv/{version}")


def choose(bin_dir: Path) -> subprocess.CompletedProcess:
    # The system's sh, sed, grep and sort, but no Python of the system's.
    tools = bin_dir.parent / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("sed", "grep", "sort", "tail"):
        link = tools / tool
        if not link.exists():
            link.symlink_to(subprocess.check_output(["sh", "-c", f"command -v {tool}"],
                                                    text=True).strip())
    env = {"PATH": f"{bin_dir}:{tools}", "HOME": str(bin_dir.parent)}
    return subprocess.run(["/bin/sh", str(CHOOSER)], env=env, capture_output=True, text=True,
                          check=True)


def test_python_3_13_on_path_is_chosen_over_3_12_and_3_11(tmp_path):
    bin_dir = tmp_path / "bin"
    for name in ("python3.13", "python3.12", "python3.11"):
        fake_python(bin_dir, name, f"/usr/{name}")
    chosen = choose(bin_dir)
    assert chosen.stdout.strip() == str(bin_dir / "python3.13")
    assert chosen.stderr == ""


def test_python_3_12_is_chosen_when_there_is_no_3_13(tmp_path):
    bin_dir = tmp_path / "bin"
    for name in ("python3.12", "python3.11"):
        fake_python(bin_dir, name, f"/usr/{name}")
    assert choose(bin_dir).stdout.strip() == str(bin_dir / "python3.12")


def test_a_pyenv_shim_that_fails_is_passed_over_for_pyenvs_newest_build(tmp_path):
    bin_dir, root = tmp_path / "bin", tmp_path / "pyenv-root"
    fake_python(bin_dir, "python3.13")  # a shim: pyenv has 3.13 but has not selected it
    fake_python(bin_dir, "python3.11", "/usr/python3.11")
    fake_pyenv(bin_dir, root, ["3.11.7", "3.13.0", "3.13.10", "3.13.2", "3.12.1"])
    assert choose(bin_dir).stdout.strip() == str(root / "versions/3.13.10/bin/python3.13")


def test_without_3_13_or_3_12_python_3_11_is_chosen_with_a_notice(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3.11", "/usr/python3.11")
    chosen = choose(bin_dir)
    assert chosen.stdout.strip() == "python3.11"
    assert FALLBACK_NOTICE in chosen.stderr
    assert len(chosen.stderr.splitlines()) == 1


def make_dry_run(venv: Path, python: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS")}
    done = subprocess.run(["make", "-n", f"VENV={venv}", f"PYTHON={python}",
                           f"{venv}/.installed"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout


def built_venv(tmp_path: Path, prefix: str) -> Path:
    venv = tmp_path / "venv"
    fake_python(venv / "bin", "python", prefix)
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (2**31, 2**31))  # newer than pyproject.toml
    return venv


def test_a_venv_built_by_another_python_is_built_afresh(tmp_path):
    venv = built_venv(tmp_path, "/pyenv/3.11.7")
    chosen = fake_python(tmp_path / "bin", "python3.13", "/pyenv/3.13.0")
    plan = make_dry_run(venv, chosen)
    assert f"rm -rf {venv}" in plan
    assert f"{chosen} -m venv {venv}" in plan


def test_a_venv_built_by_the_chosen_python_is_kept(tmp_path):
    venv = built_venv(tmp_path, "/pyenv/3.13.0")
    chosen = fake_python(tmp_path / "bin", "python3.13", "/pyenv/3.13.0")
    assert "up to date" in make_dry_run(venv, chosen)
