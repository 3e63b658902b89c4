"""`make run`'s server takes the client's address from the connection, never from an
`X-Forwarded-For` a client invents (academy.run.uvicorn_options: proxy headers only from
FORWARDED_ALLOW_IPS, unset by default), so the sign-in budget per address holds."""

import pytest

from tests.e2e.make_run_server import serve_like_make_run, sign_in_attempts

pytestmark = pytest.mark.django_db(transaction=True)


def test_make_runs_server_takes_no_forwarded_address_from_an_untrusted_peer(
        transactional_db):
    per_address = 3
    # FORWARDED_ALLOW_IPS unset: make run's default.
    with serve_like_make_run(LOGIN_FAILURES_PER_ADDRESS=str(per_address)) as (base, _):
        attempts = sign_in_attempts(base)
        answers = [next(attempts) for _ in range(per_address + 2)]
    # Every attempt came from 127.0.0.1, whatever its header said.
    assert answers == [200] * per_address + [429, 429]
