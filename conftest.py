"""Shared fixtures: real Redis (flushed per test), tenants with users and tokens, clients."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from academy.tenants.models import Membership, Tenant
from jobbox.client import get_redis, reset_clients


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """Each test starts with an empty Redis database (the one REDIS_URL names)."""
    reset_clients()
    get_redis().flushdb()
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
