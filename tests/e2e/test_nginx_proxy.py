"""The example proxy configuration (deploy/nginx/jobbox.conf) in front of `make run`'s server,
with Debian's nginx (installed by the Makefile's `nginx` prerequisite of `make test`): it
serves the API and the stream, replaces whatever `X-Forwarded-For` a client invents with the
address it saw, closes connections that never finish their headers, and answers `HEAD` on the
stream without opening one."""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from process_tools import free_port
from tests.e2e.make_run_server import serve_like_make_run, sign_in_attempts
from tests.e2e.test_connection_budgets import PARTIAL_HEAD, closed_by_server

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "jobbox.conf"
NGINX_START_TIMEOUT_SECONDS = 30


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.access(found, os.X_OK), "nginx is missing: `make nginx` installs Debian's"
    return found


def main_config(folder: Path, listen: int, upstream: str) -> str:
    """A whole nginx.conf around the deploy file: its own pid, logs and temporary files."""
    # As `envsubst '${JOBBOX_UPSTREAM} ${JOBBOX_LISTEN}'` would: nginx's own $variables stay.
    site = (CONFIG.read_text().replace("${JOBBOX_UPSTREAM}", upstream)
            .replace("${JOBBOX_LISTEN}", f"127.0.0.1:{listen}"))
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(mode=0o777)
        path.chmod(0o777)  # the workers run as nobody when the test runs as root
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{site}
}}
"""


@contextmanager
def nginx_in_front_of(upstream: str) -> Iterator[tuple[str, int]]:
    folder = Path(tempfile.mkdtemp(prefix="jobbox-nginx-"))
    folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    port = free_port()
    (folder / "nginx.conf").write_text(main_config(folder, port, upstream))
    process = subprocess.Popen([nginx_binary(), "-p", str(folder), "-c",
                                str(folder / "nginx.conf"), "-g", "daemon off;"])
    try:
        _wait_until_listening(process, port, folder)
        yield f"http://127.0.0.1:{port}", port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_listening(process: subprocess.Popen, port: int, folder: Path) -> None:
    deadline = time.monotonic() + NGINX_START_TIMEOUT_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            log = (folder / "error.log").read_text() if (folder / "error.log").exists() else ""
            assert process.poll() is None, f"nginx exited: {log}"
            assert time.monotonic() < deadline, f"nginx did not listen: {log}"
            time.sleep(0.1)


def status_of(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method),
                                    timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.fixture
def proxied() -> Iterator[tuple[str, int]]:
    per_address = 3
    with ExitStack() as stack:
        _, app_port = stack.enter_context(serve_like_make_run(
            FORWARDED_ALLOW_IPS="127.0.0.1", LOGIN_FAILURES_PER_ADDRESS=str(per_address)))
        yield stack.enter_context(nginx_in_front_of(f"127.0.0.1:{app_port}"))


def test_the_service_answers_through_the_proxy(proxied):
    base, _ = proxied
    assert status_of(f"{base}/healthz") == 200
    assert status_of(f"{base}/api/jobbox/stream", method="HEAD") == 401
    assert status_of(f"{base}/api/jobbox/stream") == 401


def test_an_invented_forwarded_for_does_not_give_a_client_new_addresses(proxied):
    base, _ = proxied
    attempts = sign_in_attempts(base)  # each with another X-Forwarded-For
    assert [next(attempts) for _ in range(5)] == [200, 200, 200, 429, 429]


def test_the_proxy_closes_a_connection_that_never_finishes_its_headers(proxied):
    _, port = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(PARTIAL_HEAD)
        assert closed_by_server(sock)
