"""Logout ends every open stream of the user's sessions within the stream's re-check interval,
not at the stream's 10-minute limit: the re-check compares the session generation that logout
replaces (jobbox.http.views.principal_check). A token's stream goes on: logout does not
revoke the user's tokens, and polls with the token keep working too."""

import http.client
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from process_tools.redis_server import RedisServer
from tests.asgi_server import serve_asgi
from tests.sse import EVENT_WAIT_SECONDS, SSEStream, is_status
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)

# Principals re-checked twice a second: what is proven is the end, within a few re-checks.
RECHECK_SECONDS = "0.5"


class SessionStream(SSEStream):
    """The page's stream: opened with the session cookie, as the browser's EventSource does."""

    def __init__(self, base: str, cookie: str) -> None:
        self.connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=1.0)
        self.connection.request("GET", "/api/jobbox/stream", headers={
            "Cookie": cookie, "Accept": "text/event-stream"})
        self.connection.sock.settimeout(EVENT_WAIT_SECONDS)
        self.response = self.connection.getresponse()
        self.heartbeats = 0


@pytest.fixture(scope="module")
def private_redis():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(private_redis):
    with serve_asgi(private_redis.url, JOBBOX_STREAM_RECHECK_SECONDS=RECHECK_SECONDS) as base:
        yield base


@pytest.fixture(autouse=True)
def on_private_redis(private_redis, settings):
    redis.Redis.from_url(private_redis.url).flushdb()
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": private_redis.url}


def signed_in(member) -> Client:
    client = Client()
    assert client.login(username=member.user.username, password="pw-" + member.tenant.slug)
    return client


def cookie_of(client: Client) -> str:
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def test_logout_ends_the_streams_of_every_session_and_spares_the_token(server, alice):
    laptop, phone = signed_in(alice), signed_in(alice)
    streams = [SessionStream(server, cookie_of(laptop)), SessionStream(server, cookie_of(phone)),
               SSEStream(server, alice.token)]
    try:
        assert [stream.next_event().name for stream in streams] == ["box"] * 3
        assert laptop.post("/logout/").status_code == 302
        for stream in streams[:2]:  # the session logged out and the other one
            assert stream.until(lambda e: e.name == "reauthenticate")
            with pytest.raises(EOFError):
                stream.next_event()
        video = new_video(alice)
        assert streams[2].until(is_status("UPLOADED", video.pk))
    finally:
        for stream in streams:
            stream.close()
