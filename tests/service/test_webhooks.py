"""Webhooks: refused targets (never contacted), the outbox in the transition's transaction,
signed deliveries a Standard Webhooks verifier accepts, retries with one id, budgets."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from academy.tenants.models import Membership
from academy.videos import services
from academy.webhooks import delivery, targets
from academy.webhooks.models import Delivery, Endpoint
from tests.video_helpers import new_video


class Receiver:
    """A webhook receiver on loopback: records each request, answers from a script of codes."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                code = receiver.codes.pop(0) if receiver.codes else 204
                self.send_response(code)
                if code in (301, 302):
                    self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/x")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host_port = f"127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def send_in_the_test_thread(settings):
    # The round's threads have connections of their own, which would not see a test's
    # uncommitted rows; the threaded round is proven by a transactional test below.
    settings.WEBHOOK_SEND_THREADS = 1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    with override_settings(WEBHOOK_ALLOWED_HOSTS=[server.host_port]):
        yield server
    server.close()


def make_admin(member) -> None:
    Membership.objects.filter(user=member.user).update(role="admin")


def register(member, url: str, events=("job.finished", "job.failed")):
    return member.client().post("/api/webhooks/", {"url": url, "events": list(events)},
                                format="json")


def finish_a_video(member) -> None:
    video = new_video(member)
    services.mark_processing(video.pk, worker_id="w1")
    services.complete_video(video.pk, "hls/a/master.m3u8", 12)


@pytest.fixture
def stub_resolver(monkeypatch):
    """Name resolution answered by the test: no lookup, and nothing is ever contacted."""
    answers: dict[str, list[str]] = {}
    monkeypatch.setattr(targets, "resolve", lambda host, port: answers[host])
    return answers


@pytest.fixture
def no_connection(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a refused target must not be connected to")
    monkeypatch.setattr(targets, "_pool", refuse)


@pytest.mark.parametrize(("url", "code"), [
    ("http://127.0.0.1:6379/", "address_not_allowed"),
    ("http://[::1]:5432/", "address_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("http://user:pw@localhost/", "credentials_in_url"),
    ("gopher://127.0.0.1:70/", "scheme_not_allowed"),
    ("http:///nohost", "invalid_url"),
])
def test_registering_a_target_that_is_not_allowed_is_refused_with_a_clear_400(alice, url, code):
    make_admin(alice)
    answer = register(alice, url)
    assert answer.status_code == 400
    assert answer.json()["url"][0]
    assert not Endpoint.objects.exists()
    with pytest.raises(targets.TargetRefused) as refused:
        targets.allowed_addresses(targets.parse(url))
    assert refused.value.code == code


@pytest.mark.parametrize("addresses", [
    ["10.0.0.7"], ["172.16.5.4"], ["192.168.1.1"], ["169.254.169.254"], ["fd00::1"],
    ["fe80::1"], ["::ffff:192.168.1.1"], ["100.64.0.1"], ["224.0.0.1"], ["0.0.0.0"],
    ["240.0.0.1"], ["93.184.216.34", "10.0.0.1"],
])
def test_private_link_local_and_reserved_targets_are_refused_at_registration(
        alice, stub_resolver, no_connection, addresses):
    make_admin(alice)
    stub_resolver["hooks.example.test"] = addresses
    answer = register(alice, "https://hooks.example.test/in")
    assert answer.status_code == 400
    assert "loopback, private" in answer.json()["url"][0]


def test_a_public_target_is_registered_with_its_secret_shown_once(alice, stub_resolver,
                                                                  no_connection):
    make_admin(alice)
    stub_resolver["hooks.example.test"] = ["93.184.216.34"]
    created = register(alice, "https://hooks.example.test/in")
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # a secret the verifier accepts
    listed = alice.client().get("/api/webhooks/").json()["endpoints"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    rotated = alice.client().post(f"/api/webhooks/{body['id']}/secret/").json()["secret"]
    assert rotated != body["secret"]


def test_a_target_that_resolves_to_loopback_at_delivery_is_not_contacted(
        alice, stub_resolver, no_connection):
    make_admin(alice)
    stub_resolver["hooks.example.test"] = ["93.184.216.34"]
    assert register(alice, "https://hooks.example.test/in").status_code == 201
    stub_resolver["hooks.example.test"] = ["127.0.0.1"]  # DNS rebinding
    finish_a_video(alice)
    assert delivery.deliver_due() == 1
    sent = Delivery.objects.get()
    assert (sent.status, sent.last_error, sent.attempts) == ("PENDING", "address_not_allowed", 1)


def test_a_finished_job_is_delivered_signed_as_the_poll_shows_it(alice, receiver):
    make_admin(alice)
    secret = register(alice, f"http://{receiver.host_port}/hook").json()["secret"]
    finish_a_video(alice)
    assert delivery.deliver_due() == 1
    [(headers, body)] = receiver.requests
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.finished"
    video_id = event["data"]["id"]
    assert event["data"]["job"] == alice.client().get(f"/api/videos/{video_id}/").json()
    sent = Delivery.objects.get()
    assert (sent.status, sent.last_status_code) == ("DELIVERED", 204)
    assert sent.message_id == headers["webhook-id"]
    log = alice.client().get(f"/api/webhooks/{sent.endpoint_id}/deliveries/").json()
    assert log["deliveries"][0]["status"] == "DELIVERED"
    assert log["deliveries"][0]["response_ms"] is not None


def test_only_subscribed_events_are_written(alice, receiver):
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook", events=["job.failed"])
    finish_a_video(alice)
    assert not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transition_writes_no_delivery(alice, receiver):
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook")
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.complete_video(video.pk, "hls/a/master.m3u8", 12)
        assert Delivery.objects.count() == 1  # written in the transition's transaction
        raise RuntimeError("rolled back")
    assert not Delivery.objects.exists()


def test_a_failed_delivery_is_retried_later_with_the_same_id(alice, receiver):
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook")
    receiver.codes = [503]
    finish_a_video(alice)
    delivery.deliver_due()
    pending = Delivery.objects.get()
    assert (pending.status, pending.attempts, pending.last_status_code) == ("PENDING", 1, 503)
    assert pending.next_attempt_at > timezone.now()
    assert delivery.deliver_due() == 0  # not due yet
    Delivery.objects.update(next_attempt_at=timezone.now())
    delivery.deliver_due()
    assert Delivery.objects.get().status == "DELIVERED"
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(receiver.requests) == 2 and len(ids) == 1


def test_a_redirect_is_not_followed(alice, receiver):
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook")
    receiver.codes = [302]
    finish_a_video(alice)
    delivery.deliver_due()
    assert len(receiver.requests) == 1
    assert Delivery.objects.get().last_error == "HTTP 302"


def test_retries_back_off_exponentially_with_jitter():
    delays = [delivery.retry_delay_seconds(n) for n in range(1, 30)]
    assert 2.5 <= delays[0] <= 5
    assert 20 <= delays[3] <= 40
    assert max(delays) <= delivery.RETRY_MAX_SECONDS
    assert len({round(delivery.retry_delay_seconds(8), 3) for _ in range(20)}) > 1


def test_one_academys_backlog_leaves_the_others_their_budget(alice, bob, receiver):
    for member in (alice, bob):
        make_admin(member)
        register(member, f"http://{receiver.host_port}/hook")
    for _ in range(10):
        finish_a_video(alice)
    for _ in range(2):
        finish_a_video(bob)
    claimed = delivery.claim_due(timezone.now() + timedelta(seconds=1))
    by_tenant = {t: sum(1 for d in Delivery.objects.filter(id__in=claimed, tenant=t))
                 for t in (alice.tenant, bob.tenant)}
    assert by_tenant == {alice.tenant: 4, bob.tenant: 2}
    # Those leased stay leased: a second round (another worker) takes none of alice's.
    again = delivery.claim_due(timezone.now() + timedelta(seconds=1))
    assert not Delivery.objects.filter(id__in=again, tenant=alice.tenant).exists()


def test_an_endpoint_failing_for_a_day_is_disabled_and_says_why(alice, receiver):
    make_admin(alice)
    endpoint_id = register(alice, f"http://{receiver.host_port}/hook").json()["id"]
    receiver.codes = [500]
    finish_a_video(alice)
    day_ago = timezone.now() - timedelta(hours=25)
    Delivery.objects.update(created_at=day_ago)
    Endpoint.objects.update(failing_since=day_ago)
    delivery.deliver_due()
    assert Delivery.objects.get().status == "FAILED"
    shown = alice.client().get(f"/api/webhooks/{endpoint_id}/").json()
    assert shown["enabled"] is False and "HTTP 500" in shown["disabled_reason"]
    finish_a_video(alice)
    assert Delivery.objects.count() == 1  # a disabled endpoint is written no more


def test_another_academys_endpoint_is_not_found_and_members_who_are_not_admins_are_refused(
        alice, bob, receiver):
    make_admin(alice)
    endpoint_id = register(alice, f"http://{receiver.host_port}/hook").json()["id"]
    make_admin(bob)
    for path in (f"/api/webhooks/{endpoint_id}/", f"/api/webhooks/{endpoint_id}/deliveries/"):
        assert bob.client().get(path).status_code == 404
    assert bob.client().delete(f"/api/webhooks/{endpoint_id}/").status_code == 404
    Membership.objects.filter(user=alice.user).update(role="staff")
    assert alice.client().get("/api/webhooks/").status_code == 403
    assert alice.client().get(f"/api/webhooks/{endpoint_id}/").status_code == 403


def test_an_academy_has_a_bounded_number_of_endpoints(alice, receiver):
    make_admin(alice)
    with override_settings(WEBHOOK_MAX_ENDPOINTS_PER_ACADEMY=2):
        codes = [register(alice, f"http://{receiver.host_port}/{n}").status_code
                 for n in range(3)]
    assert codes == [201, 201, 409]


def test_anonymous_requests_are_refused(client):
    assert client.get("/api/webhooks/").status_code in (401, 403)
    assert client.post("/api/webhooks/", {}).status_code in (401, 403)


def test_a_delivery_body_is_the_same_bytes_on_every_attempt(alice, receiver):
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook")
    receiver.codes = [500]
    finish_a_video(alice)
    delivery.deliver_due()
    Delivery.objects.update(next_attempt_at=timezone.now())
    delivery.deliver_due()
    bodies = [body for _, body in receiver.requests]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert json.loads(bodies[0])["data"]["job"]["status"] == "READY"


@pytest.mark.django_db(transaction=True)
def test_a_round_sends_in_threads_each_delivery_once(alice, receiver, settings):
    settings.WEBHOOK_SEND_THREADS = 4
    make_admin(alice)
    register(alice, f"http://{receiver.host_port}/hook")
    for _ in range(3):
        finish_a_video(alice)
    assert delivery.deliver_due() == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {"DELIVERED"}
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 3
