"""uvicorn started with `make run`'s own options (academy.run.uvicorn_options) on the test
database and Redis: what a client meets, connection budgets included."""

import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from academy.run import uvicorn_options
from jobbox import conf
from process_tools import free_port
from tests.asgi_server import _serving


@contextmanager
def serve_like_make_run(**env: str) -> Iterator[tuple[str, int]]:
    """Runs one uvicorn worker as `make run` does until the block ends; yields its base URL
    and port. `env` reaches both the options and the server (FORWARDED_ALLOW_IPS, ...)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "academy.asgi:application", "--host",
               "127.0.0.1", "--port", str(port), "--log-level", "warning",
               *uvicorn_options(env)]
    with _serving(command, port, conf.settings().REDIS_URL, env) as base:
        yield base, port


def sign_in_attempts(base: str) -> Iterator[int]:
    """Sign-in attempts through a real server, each with a new `X-Forwarded-For`."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    with opener.open(f"{base}/login/", timeout=30) as page:
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                         page.read().decode()).group(1)
    for n in range(sys.maxsize):
        body = urllib.parse.urlencode({"username": f"nobody-{n}", "password": "guess",
                                       "csrfmiddlewaretoken": csrf}).encode()
        request = urllib.request.Request(
            f"{base}/login/", data=body,
            headers={"X-Forwarded-For": f"192.0.2.{n % 250 + 1}", "Referer": f"{base}/login/"})
        try:
            with opener.open(request, timeout=60) as answer:
                yield answer.status
        except urllib.error.HTTPError as refused:
            yield refused.code
