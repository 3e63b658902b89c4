"""`make run`: the whole service on the embedded default, stopped together by Ctrl-C.

Starts a private Redis (unless `REDIS_URL` is set), migrates the database (SQLite under
.run/ unless `DATABASE_URL` is set), creates the demo tenants, then serves the API at
http://127.0.0.1:$PORT (8000), runs the Celery worker (with beat) and prints tokens and a
curl line to try.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from academy import metrics_dir
from academy.embedded import URL_FILE_NAME, RedisServer

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"
PYTHON = sys.executable


def manage(*args: str) -> str:
    return subprocess.run(
        [PYTHON, str(BASE_DIR / "manage.py"), *args],
        check=True, stdout=subprocess.PIPE, text=True, cwd=BASE_DIR,
    ).stdout


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    port = os.environ.get("PORT", "8000")
    url_file = RUN_DIR / URL_FILE_NAME
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        redis_server = RedisServer(data_dir=RUN_DIR / "redis").start()
        os.environ["REDIS_URL"] = redis_server.url
        url_file.write_text(redis_server.url)  # so `manage.py ...` in another shell finds it
    children: list[subprocess.Popen[bytes]] = []
    try:
        manage("migrate", "--noinput")
        _print_welcome(json.loads(manage("bootstrap_demo")), port)
        metrics_dir.prepare(RUN_DIR / "prometheus")  # /metrics sums the workers (emptied now)
        # One origin for the page, the API and the event stream: uvicorn serves the whole
        # ASGI app here; production splits the stream off to uvicorn and keeps polls on
        # gunicorn's sync path (README, "Job box: serving").
        children.append(subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "academy.asgi:application", "--host", "127.0.0.1",
             "--port", port, "--workers", "2", "--timeout-graceful-shutdown", "3"],
            cwd=BASE_DIR,
        ))
        # The worker, with the periodic scheduler (beat) embedded: one process to run here.
        children.append(subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "academy", "worker", "--beat", "--loglevel", "INFO",
             "--concurrency", "2", "--schedule", str(RUN_DIR / "celerybeat-schedule")],
            cwd=BASE_DIR,
        ))
        return _wait(children)
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
        for child in children:
            child.wait()
        if redis_server:
            url_file.unlink(missing_ok=True)
            redis_server.stop()


def _wait(children: list[subprocess.Popen[bytes]]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            for child in children:
                code = child.poll()
                if code is not None:
                    print(f"{' '.join(child.args[1:4])} exited with {code}; stopping",
                          file=sys.stderr)
                    return code or 1
            with contextlib.suppress(subprocess.TimeoutExpired):
                children[0].wait(timeout=1)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
        return 0


def _print_welcome(demo: dict, port: str) -> None:
    base = f"http://127.0.0.1:{port}"
    print(f"\nJobbox reference service at {base}  (Ctrl-C stops everything)")
    print(f"The job box page: {base}/  (sign in with a user and password below)\n")
    for tenant in demo["tenants"]:
        for user in tenant["users"]:
            print(f"  tenant {tenant['slug']:<15} user {user['username']:<14} "
                  f"password {user['password']}  token {user['token']}")
    token = demo["tenants"][0]["users"][0]["token"]
    slug = demo["tenants"][0]["slug"]
    print(f"\nStart some jobs:  .venv/bin/python manage.py simulate_jobs --tenant {slug} "
          f"--videos 3 --seconds 60")
    print(f"Poll one:         curl -s -H 'Authorization: Token {token}' {base}/api/videos/1/\n",
          flush=True)
    print(f"Grade a sheet:    curl -s -H 'Authorization: Token {token}' -F file=@scores.xlsx "
          f"-F job_type=excel.grade_report {base}/api/ai/jobs/\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
