"""The service layer's fixtures: real Redis (flushed per test, or a local Redis Cluster under
`make test-cluster`), tenants with users and tokens, and a real Celery worker process."""

import subprocess
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from jobbox.client import get_redis, reset_clients
from tests.members import Member, make_member
from tests.redis_cluster import LocalCluster, cluster_mode
from tests.workers import start_worker, stop_worker
from tests.xdist_redis import require_private_redis


def pytest_configure(config: pytest.Config) -> None:
    require_private_redis(config)


@pytest.fixture(scope="session")
def suites_redis_cluster() -> Iterator[LocalCluster | None]:
    """With JOBBOX_TEST_REDIS_CLUSTER=1 (`make test-cluster`), a local 3-master cluster that
    every test runs on instead of REDIS_URL's Redis."""
    if not cluster_mode():
        yield None
        return
    with LocalCluster(masters=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def clean_redis(suites_redis_cluster: LocalCluster | None) -> Iterator[None]:
    """Each test starts with an empty Redis database (the one REDIS_URL names, or the local
    cluster's every master)."""
    reset_clients()
    if suites_redis_cluster is None:
        get_redis().flushdb()
        yield
        reset_clients()
        return
    suites_redis_cluster.flush()
    on_cluster = {**getattr(settings, "JOBBOX", {}), "REDIS_URL": suites_redis_cluster.url,
                  "REDIS_CLUSTER": True}
    with override_settings(JOBBOX=on_cluster):
        yield
    reset_clients()


@pytest.fixture
def alice(db: None) -> Member:
    return make_member("alpha")


@pytest.fixture
def bob(db: None) -> Member:
    return make_member("beta")


@pytest.fixture
def worker(transactional_db: None) -> Iterator[subprocess.Popen]:
    """One worker (solo pool) for the test; tests that kill it start their own."""
    process = start_worker("--pool", "solo")
    yield process
    stop_worker(process)
