"""A process that writes to a SQLite database through Django with the service's settings
(or Django's stock SQLite options with `--stock`): many short read-then-write transactions,
the shape of every transition. Started by tests/e2e/test_sqlite_concurrency.py.

Usage: DATABASE_URL=sqlite:///... python -m tests.sqlite_writer TRANSACTIONS [--stock]
Prints "ready", waits for a line on stdin (so every writer starts at once), then prints
the number of transactions that failed with "database is locked".
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")


def main() -> None:
    from django.conf import settings

    transactions = int(sys.argv[1])
    if "--stock" in sys.argv:
        settings.DATABASES["default"]["OPTIONS"] = {}  # Django's defaults: DEFERRED, 5 s
    import django

    django.setup()
    from django.db import OperationalError, connection, transaction

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    locked = 0
    for number in range(transactions):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM writes")
                cursor.fetchone()
                cursor.execute("INSERT INTO writes (writer, number) VALUES (%s, %s)",
                               [os.getpid(), number])
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            locked += 1
    print(locked, flush=True)


if __name__ == "__main__":
    main()
