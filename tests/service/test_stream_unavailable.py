"""A stream that cannot be served (no Redis to read the box and history from) is refused with
a 503 that says when to come back, like every other 503 of the service."""

import urllib.error
import urllib.request

import pytest

from tests.asgi_server import serve_asgi

pytestmark = pytest.mark.django_db(transaction=True)

# Port 1 on loopback: nothing listens, every Redis call fails at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"


def test_a_stream_without_redis_is_refused_with_503_and_retry_after(alice):
    with serve_asgi(UNREACHABLE_REDIS_URL) as base:
        request = urllib.request.Request(f"{base}/api/jobbox/stream",
                                         headers={"Authorization": f"Token {alice.token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)

    assert refused.value.code == 503
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert b"Traceback" not in refused.value.read()
