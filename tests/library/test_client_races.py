"""The Redis client's own state under outages: making the first client while Redis cannot be
reached, and what a reset leaves behind."""

import os
import subprocess
import sys
import textwrap

import pytest

from jobbox.breaker import State
from jobbox.client import get_breaker, reset_clients
from jobbox.metrics import REDIS_BREAKER_STATE

# Port 1 on loopback: nothing listens, the connection is refused at once.
UNREACHABLE_URL = "redis://127.0.0.1:1/0"
# Far longer than a refused connection takes even on a loaded machine; a hung call never ends.
HANG_LIMIT_SECONDS = 60

# A fresh process (no client, no breaker yet) whose first call is `get_redis()`, as a web
# process started during a cluster outage makes it; a second thread then needs the same lock.
FIRST_CALL = textwrap.dedent("""
    import sys, threading
    from django.conf import settings
    settings.configure(JOBBOX={"REDIS_URL": sys.argv[1], "REDIS_CLUSTER": True})
    from jobbox import client
    try:
        client.get_redis()
    except client.RedisUnavailable as exc:
        print("unavailable", type(exc.__cause__).__name__)
    other = threading.Thread(target=client.get_breaker)
    other.start()
    other.join()
    print("breaker failures", client.get_breaker()._failures)
""")


@pytest.mark.parametrize("url", [UNREACHABLE_URL, os.environ.get("REDIS_URL", "")],
                         ids=["unreachable", "not-a-cluster"])
def test_the_first_cluster_client_made_while_no_cluster_answers_fails_instead_of_hanging(url):
    try:
        done = subprocess.run([sys.executable, "-c", FIRST_CALL, url], capture_output=True,
                              text=True, timeout=HANG_LIMIT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("get_redis() never returned: the process waits on its own lock")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("unavailable ")
    assert lines[1] == "breaker failures 1"


def test_a_reset_leaves_the_breaker_state_gauge_closed(settings):
    settings.JOBBOX = {**settings.JOBBOX, "BREAKER_FAILURE_THRESHOLD": 1}
    get_breaker().record_failure("ConnectionError")
    assert REDIS_BREAKER_STATE._value.get() == int(State.OPEN)

    reset_clients()

    assert get_breaker().state is State.CLOSED
    assert REDIS_BREAKER_STATE._value.get() == int(State.CLOSED)
