"""The embedded default's secrets are random per installation and kept under .run/ (issue
15: the default SECRET_KEY was a constant and the demo passwords were derived from it, so
anyone who read the code could compute them)."""

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils.crypto import salted_hmac

from academy import installation

THE_OLD_CONSTANT = "insecure-dev-key-set-DJANGO_SECRET_KEY"
RACING_PROCESSES = 6


def test_each_installation_gets_its_own_secret_key_kept_private(tmp_path):
    first, second = installation.secret_key(tmp_path / "a"), installation.secret_key(tmp_path / "b")
    assert first != second and len(first) >= 50
    assert installation.secret_key(tmp_path / "a") == first  # kept, not remade
    mode = stat.S_IMODE((tmp_path / "a" / installation.SECRET_KEY_FILE_NAME).stat().st_mode)
    assert mode == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path):
    code = ("import sys; from pathlib import Path; from academy import installation; "
            "print(installation.secret_key(Path(sys.argv[1])))")
    racers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
              for _ in range(RACING_PROCESSES)]
    keys = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert len(keys) == 1 and "" not in keys
    assert [p.name for p in tmp_path.iterdir()] == [installation.SECRET_KEY_FILE_NAME]


def test_settings_use_the_installations_key_unless_one_is_given():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    code = "import academy.settings as s; print(s.SECRET_KEY); print(s.RUN_DIR)"
    key, run_dir = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=env, check=True, timeout=60).stdout.split()
    assert key != THE_OLD_CONSTANT
    assert key == (Path(run_dir) / installation.SECRET_KEY_FILE_NAME).read_text().strip()
    given = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, "DJANGO_SECRET_KEY": "from-the-environment"},
                           check=True, timeout=60).stdout.split()[0]
    assert given == "from-the-environment"


@pytest.mark.django_db
def test_demo_passwords_are_random_kept_and_not_derived_from_the_key(settings, tmp_path):
    settings.RUN_DIR = tmp_path

    def bootstrap() -> dict[str, str]:
        out = io.StringIO()
        call_command("bootstrap_demo", stdout=out)
        return {user["username"]: user["password"] for tenant in json.loads(out.getvalue())
                ["tenants"] for user in tenant["users"]}

    first = bootstrap()
    assert bootstrap() == first
    for username, password in first.items():
        kept = tmp_path / f"{installation.DEMO_PASSWORD_FILE_PREFIX}{username}"
        assert kept.read_text().strip() == password
        assert password != salted_hmac("jobbox-demo-password", username).hexdigest()[:16]
    assert len(set(first.values())) == len(first)
