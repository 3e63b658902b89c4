"""The library layer's fixtures: jobbox in a toy project (tests.library.settings), real Redis
flushed per test, people in two teams with their tokens and API clients.

This layer runs as its own pytest invocation, `pytest tests/library
--ds=tests.library.settings`: pytest-django configures one settings module per run, and the
service's settings would not know the toy app.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobbox.client import get_redis, reset_clients
from tests.xdist_redis import require_private_redis

LIBRARY_SETTINGS = "tests.library.settings"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse, with the command to use, a run on any other settings or a parallel run
    without a Redis per worker."""
    require_private_redis(config)
    chosen = config.getoption("ds", default=None) or os.environ.get("DJANGO_SETTINGS_MODULE")
    if chosen != LIBRARY_SETTINGS:
        raise pytest.UsageError(
            f"tests/library runs on its own settings: pytest tests/library --ds={LIBRARY_SETTINGS}")


@dataclass
class Person:
    user: object
    team: int
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client

    def poll(self, chore_id: object) -> object:
        return self.client().get(f"/api/chores/{chore_id}/")

    def box(self) -> object:
        return self.client().get("/api/jobbox/")


def make_person(name: str, team: int) -> Person:
    from tests.library.toyapp.models import Seat

    user = get_user_model().objects.create_user(username=name, password=f"pw-{name}")
    Seat.objects.create(user=user, team=team)
    return Person(user=user, team=team, token=Token.objects.create(user=user).key)


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """Each test starts with an empty Redis database (the one REDIS_URL names)."""
    reset_clients()
    get_redis().flushdb()
    yield
    reset_clients()


@pytest.fixture
def ann(db: None) -> Person:
    return make_person("ann", team=1)


@pytest.fixture
def ben(db: None) -> Person:
    """In another team than Ann's."""
    return make_person("ben", team=2)
