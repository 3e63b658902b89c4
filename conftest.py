"""Shared fixtures: real Redis (flushed per test), tenants with users and tokens, clients,
and a real Celery worker process on the test database."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from academy.celery import app as celery_app
from academy.tenants.models import Membership, Tenant
from jobbox import conf
from jobbox.client import get_redis, reset_clients
from process_tools import stop_process, wait_until
from tests.redis_cluster import LocalCluster, cluster_mode

# A worker process imports Django and connects to the broker in a few seconds here.
WORKER_START_TIMEOUT_SECONDS = 60
# A worker's warm shutdown lets its current task finish: room for one short test task.
WORKER_STOP_GRACE_SECONDS = 20


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


@dataclass
class Member:
    tenant: Tenant
    user: object
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client


def make_member(slug: str) -> Member:
    tenant = Tenant.objects.create(slug=slug, name=slug.title())
    user = get_user_model().objects.create_user(username=f"{slug}-user", password="pw-" + slug)
    Membership.objects.create(user=user, tenant=tenant)
    return Member(tenant=tenant, user=user, token=Token.objects.create(user=user).key)


@pytest.fixture
def alice(db: None) -> Member:
    return make_member("alpha")


@pytest.fixture
def bob(db: None) -> Member:
    return make_member("beta")


def test_database_url() -> str:
    """A DATABASE_URL for the database the tests run on, for processes they start."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(*extra_args: str) -> subprocess.Popen:
    """A real `celery worker` process on the test database and the test Redis; waits until up."""
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "DATABASE_URL": test_database_url(),
           "REDIS_URL": conf.get("REDIS_URL"), "CELERY_BROKER_URL": celery_app.conf.broker_url,
           "REDIS_CLUSTER": "1" if conf.get("REDIS_CLUSTER") else ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "academy", "worker", "--loglevel", "WARNING",
         "--hostname", name, "--without-gossip", "--without-mingle", *extra_args],
        env=env,
    )
    # Stops waiting early when the worker has exited (its status is then not None).
    wait_until(lambda: process.poll() is not None
               or celery_app.control.ping(destination=[name], timeout=0.5),
               timeout_seconds=WORKER_START_TIMEOUT_SECONDS)
    if process.poll() is None and celery_app.control.ping(destination=[name], timeout=0.5):
        return process
    stop_process(process, grace_seconds=0)
    raise RuntimeError("the Celery worker did not start")


def stop_worker(process: subprocess.Popen) -> None:
    stop_process(process, grace_seconds=WORKER_STOP_GRACE_SECONDS)


@pytest.fixture
def worker(transactional_db: None) -> Iterator[subprocess.Popen]:
    """One worker (solo pool) for the test; tests that kill it start their own."""
    process = start_worker("--pool", "solo")
    yield process
    stop_worker(process)
