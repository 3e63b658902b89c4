"""Secrets of one installation, made at random on first use and kept under `.run/`: a
constant default SECRET_KEY would let anyone who read the code compute the demo passwords
derived from it offline.

`DJANGO_SECRET_KEY` still wins when set (production). Files are created with mode 0600 and
published with an atomic link, so processes starting together (web workers, Celery, beat)
agree on one value: the first link wins and everyone reads it.
"""

import contextlib
import os
import secrets
from pathlib import Path

SECRET_KEY_FILE_NAME = "secret_key"
DEMO_PASSWORD_FILE_PREFIX = "demo_password_"
# 50 random bytes, URL-safe: longer than Django's own generated keys (50 characters).
SECRET_KEY_BYTES = 50
# 12 random bytes → 16 characters: the length the demo passwords always had, now unguessable.
DEMO_PASSWORD_BYTES = 12
PRIVATE_FILE_MODE = 0o600


def secret_key(run_dir: Path) -> str:
    return read_or_create(run_dir / SECRET_KEY_FILE_NAME, secrets.token_urlsafe(SECRET_KEY_BYTES))


def demo_password(run_dir: Path, username: str) -> str:
    if not username.isidentifier():
        raise ValueError(f"not a demo username: {username!r}")
    return read_or_create(run_dir / f"{DEMO_PASSWORD_FILE_PREFIX}{username}",
                          secrets.token_urlsafe(DEMO_PASSWORD_BYTES))


def read_or_create(path: Path, fresh: str) -> str:
    """The value stored at `path`; `fresh` is stored first if there is none yet."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(fresh + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # atomic: another process's value may have won
    finally:
        draft.unlink()
    return path.read_text().strip()
