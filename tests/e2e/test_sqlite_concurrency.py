"""The embedded default's SQLite takes concurrent writers (20 uploads in a row once gave
a 503 and a FAILED job, "database is locked").

Real processes write through Django at once: with Django's stock SQLite options their
read-then-write transactions fail with "database is locked" (the finding, reproduced); with
the service's options (WAL, BEGIN IMMEDIATE, a busy timeout) every write lands.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

WRITERS = 4
TRANSACTIONS_PER_WRITER = 150
# Importing Django and connecting takes a second or two here; room for a loaded machine.
WRITER_TIMEOUT_SECONDS = 120


def _database(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE writes (id INTEGER PRIMARY KEY, writer INT, number INT)")
    return path


def _run_writers(database: Path, *flags: str) -> tuple[list[int], int]:
    """Start the writers, release them together; (locked failures per writer, rows)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    writers = [subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite_writer", str(TRANSACTIONS_PER_WRITER), *flags],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    ) for _ in range(WRITERS)]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    locked = [int(writer.communicate(timeout=WRITER_TIMEOUT_SECONDS)[0]) for writer in writers]
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT COUNT(*) FROM writes").fetchone()[0]
    return locked, rows


def test_stock_sqlite_options_lose_concurrent_writes_to_database_is_locked(tmp_path):
    locked, rows = _run_writers(_database(tmp_path / "stock.sqlite3"), "--stock")
    assert sum(locked) > 0
    assert rows == WRITERS * TRANSACTIONS_PER_WRITER - sum(locked)


def test_the_services_sqlite_options_land_every_concurrent_write(tmp_path):
    database = _database(tmp_path / "service.sqlite3")
    locked, rows = _run_writers(database)
    assert locked == [0] * WRITERS
    assert rows == WRITERS * TRANSACTIONS_PER_WRITER
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
