"""Upload bodies are refused before they are read, under uvicorn and gunicorn alike
(academy.upload_guard; docs/explanation/invariants.md, invariant 10: no disk filled by an anonymous
client).

The finding: under uvicorn Django read a whole anonymous body (1.1 GB) before the 401. These
tests run real server processes and count the body bytes the server let a client send.
"""

import pytest
from django.test import Client

from academy.videos.models import Video
from jobbox import conf
from tests.asgi_server import serve_asgi, serve_wsgi
from tests.raw_http import SEND_CHUNK_BYTES, post_streaming

pytestmark = pytest.mark.django_db(transaction=True)

ABUSIVE_BODY_BYTES = 50 * 1024 * 1024
# The upload limit the servers run with here: small, so a chunked body crosses it quickly.
SMALL_LIMIT_BYTES = 1024 * 1024
# What loopback socket buffers absorb after the server stops reading (the client's send
# buffer, up to 4 MiB here, and the server's receive buffer): 5.3 MiB measured past a 1 MiB
# limit, so 12 MiB leaves room while staying far below the abusive body.
SOCKET_BUFFER_ALLOWANCE_BYTES = 12 * 1024 * 1024
SERVER_ENV = {"VIDEO_MAX_UPLOAD_BYTES": str(SMALL_LIMIT_BYTES)}


@pytest.fixture
def uvicorn() -> str:
    with serve_asgi(conf.settings().REDIS_URL, **SERVER_ENV) as base:
        yield base


def _token(member) -> dict[str, str]:
    return {"Authorization": f"Token {member.token}"}


def test_unguarded_django_under_uvicorn_reads_a_whole_anonymous_body_first():
    """The finding, reproduced on the bare Django ASGI app: every byte is taken before 401."""
    with serve_asgi(conf.settings().REDIS_URL, app="academy.asgi:django_application",
                    **SERVER_ENV) as base:
        answer = post_streaming(base, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                headers={}, chunked=True)
    assert answer.body_bytes_sent == ABUSIVE_BODY_BYTES
    assert answer.status == 401


def test_an_anonymous_chunked_upload_is_refused_before_one_body_byte(uvicorn):
    answer = post_streaming(uvicorn, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                            headers={}, chunked=True)
    assert (answer.status, answer.answered_before_body) == (401, True)
    assert answer.body_bytes_sent == 0
    assert "connection: close" in answer.text.lower()


@pytest.mark.parametrize("path", ["/api/videos/", "/api/ai/jobs/"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(uvicorn, alice, path):
    answer = post_streaming(uvicorn, path, body_bytes=ABUSIVE_BODY_BYTES,
                            headers=_token(alice), chunked=False)
    assert (answer.status, answer.answered_before_body) == (413, True)


def test_an_unknown_token_is_refused_before_the_body(uvicorn):
    answer = post_streaming(uvicorn, "/api/ai/jobs/", body_bytes=ABUSIVE_BODY_BYTES,
                            headers={"Authorization": "Token 0123456789abcdef"}, chunked=False)
    assert (answer.status, answer.answered_before_body) == (401, True)


def test_a_chunked_body_is_cut_off_past_the_limit_as_it_streams(uvicorn, alice):
    answer = post_streaming(uvicorn, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                            headers=_token(alice), chunked=True)
    assert answer.answered_before_body is False
    assert answer.status in (413, None)  # None: the reset beat the answer to the client
    limit = SMALL_LIMIT_BYTES + 64 * 1024
    assert answer.body_bytes_sent <= limit + SOCKET_BUFFER_ALLOWANCE_BYTES
    assert answer.body_bytes_sent < ABUSIVE_BODY_BYTES
    assert Video.objects.count() == 0


def test_a_chunked_body_within_the_limit_reaches_the_view(uvicorn, alice):
    """The guard passes a good-sized body through whole (the view answers it, here 400)."""
    answer = post_streaming(uvicorn, "/api/videos/", body_bytes=4 * SEND_CHUNK_BYTES,
                            headers=_token(alice), chunked=True)
    assert answer.status == 400  # zeros are no multipart form: the view's own answer


def test_under_gunicorn_an_anonymous_upload_is_refused_before_its_body(alice):
    with serve_wsgi(conf.settings().REDIS_URL, **SERVER_ENV) as base:
        anonymous = post_streaming(base, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                   headers={}, chunked=False)
        too_long = post_streaming(base, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                  headers=_token(alice), chunked=False)
        chunked = post_streaming(base, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                 headers={}, chunked=True)
        # Without a length, Django under WSGI reads no body at all: the view sees no file.
        member_chunked = post_streaming(base, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                        headers=_token(alice), chunked=True)
    assert (anonymous.status, anonymous.answered_before_body) == (401, True)
    assert (too_long.status, too_long.answered_before_body) == (413, True)
    assert (chunked.status, chunked.answered_before_body) == (401, True)
    assert (member_chunked.status, member_chunked.answered_before_body) == (400, True)


def test_the_wsgi_middleware_refuses_without_reading_the_body(alice, settings):
    """Django's test client is WSGI: its payload raises if read past the few bytes it holds,
    so a declared 10 GB is refused from the header alone."""
    settings.VIDEO_MAX_UPLOAD_BYTES = SMALL_LIMIT_BYTES
    declared = {"CONTENT_LENGTH": str(10 * 1024**3)}
    anonymous = Client().post("/api/videos/", data=b"x", content_type="multipart/form-data; "
                              "boundary=xyz", **declared)
    too_long = Client().post("/api/videos/", data=b"x", content_type="multipart/form-data; "
                             "boundary=xyz", HTTP_AUTHORIZATION=f"Token {alice.token}",
                             **declared)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
    assert (too_long.status_code, too_long.json()["code"]) == (413, "file_too_large")


def test_a_session_login_may_upload_through_the_guard(alice, settings):
    """The page's session cookie is a principal too: its upload reaches the view."""
    client = Client()
    client.force_login(alice.user)
    response = client.post("/api/videos/", data={"title": "x"})
    assert response.status_code in (400, 403)  # the view's answer (no file / CSRF), not 401


def test_any_other_path_bounds_its_body_too(uvicorn):
    """A stray multipart body to the sign-in form or a poll: Django would spool its files."""
    declared = post_streaming(uvicorn, "/api/jobbox/", body_bytes=ABUSIVE_BODY_BYTES,
                              headers={}, chunked=False)
    assert (declared.status, declared.answered_before_body) == (413, True)
    streamed = post_streaming(uvicorn, "/login/", body_bytes=ABUSIVE_BODY_BYTES, headers={},
                              chunked=True)
    assert streamed.status in (413, None)
    limit = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    assert streamed.body_bytes_sent <= limit + SOCKET_BUFFER_ALLOWANCE_BYTES


def test_a_sign_in_form_still_reaches_its_view(uvicorn):
    """Bounded, not broken: an ordinary small form body passes the guard."""
    answer = post_streaming(uvicorn, "/login/", body_bytes=SEND_CHUNK_BYTES, headers={},
                            chunked=False)
    assert answer.status == 403  # the view's CSRF check answers: the body got through


def test_the_pages_session_cookie_is_read_from_the_head_under_uvicorn(uvicorn, alice, settings):
    """The page uploads with its session cookie: the guard resolves it without the body (an
    over-long declared upload gets 413, not 401), and no cookie at all gets 401."""
    client = Client()
    client.force_login(alice.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    with_session = post_streaming(uvicorn, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                                  headers={"Cookie": cookie}, chunked=False)
    forged = post_streaming(uvicorn, "/api/videos/", body_bytes=ABUSIVE_BODY_BYTES,
                            headers={"Cookie": cookie[:-4] + "AAAA"}, chunked=False)
    assert (with_session.status, with_session.answered_before_body) == (413, True)
    assert (forged.status, forged.answered_before_body) == (401, True)
