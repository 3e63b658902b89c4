# ruff: noqa: F811 - the transcode fixtures are imported by name and used as arguments
"""A real transcode's end reaches a webhook receiver that was down at first, across a worker
restart: signed (the Standard Webhooks verifier accepts it), carrying the READY video, and
every copy that arrives has one id."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from academy.webhooks.models import Delivery
from process_tools import free_port, wait_until
from tests.e2e.test_video_transcode import clip, media, poll_until_done, upload  # noqa: F401
from tests.service.test_webhooks import make_admin, register
from tests.workers import start_worker, stop_worker

pytestmark = pytest.mark.django_db(transaction=True)

# A worker on a busy 2-core machine: start, transcode a 2-second clip, run a few rounds.
WAIT_SECONDS = 180


def receive_on(port: int, received: list) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_finished_transcode_reaches_a_receiver_that_was_down_across_a_worker_restart(
        alice, clip, media, tmp_path, monkeypatch, settings):
    port = free_port()  # nothing listens there yet: the receiver is down
    allowed = f"127.0.0.1:{port}"
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", allowed)  # for the workers started below
    settings.WEBHOOK_ALLOWED_HOSTS = [allowed]
    make_admin(alice)
    secret = register(alice, f"http://{allowed}/hooks").json()["secret"]

    def worker():
        return start_worker("--pool", "solo", "--beat",
                            "--schedule", str(tmp_path / "celerybeat-schedule"))

    first = worker()
    try:
        video_id = upload(alice, clip).json()["id"]
        assert poll_until_done(alice, video_id)["status"] == "READY"
        tried = wait_until(lambda: Delivery.objects.filter(attempts__gte=1).first(),
                           timeout_seconds=WAIT_SECONDS)
        assert tried and tried.status == "PENDING" and tried.last_error  # refused: retried
    finally:
        stop_worker(first)

    received: list = []
    receiver = receive_on(port, received)
    second = worker()
    try:
        assert wait_until(lambda: Delivery.objects.filter(status="DELIVERED").exists(),
                          timeout_seconds=WAIT_SECONDS)
    finally:
        stop_worker(second)
        receiver.shutdown()
        receiver.server_close()
    assert received
    events = [Webhook(secret).verify(body, headers) for headers, body in received]
    assert {headers["webhook-id"] for headers, _ in received} == {tried.message_id}
    assert {event["type"] for event in events} == {"job.finished"}
    assert events[0]["data"]["job"]["status"] == "READY"
    assert events[0]["data"]["id"] == str(video_id)
