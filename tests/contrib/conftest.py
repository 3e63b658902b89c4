"""Fixtures of the contrib layer: an empty Redis database per test, people in tenants."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobbox.client import get_redis, reset_clients


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    reset_clients()
    get_redis().flushdb()
    yield
    reset_clients()


@dataclass
class Person:
    tenant: str
    user: Any
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client


def make_person(username: str, tenant: str) -> Person:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    user.groups.add(Group.objects.get_or_create(name=tenant)[0])
    return Person(tenant=tenant, user=user, token=Token.objects.create(user=user).key)


@pytest.fixture
def ann(db: None) -> Person:
    return make_person("ann", tenant="north")


@pytest.fixture
def ben(db: None) -> Person:
    """Another tenant's person."""
    return make_person("ben", tenant="south")
