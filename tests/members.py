"""The service's people in tests: a tenant with one member, their token and an API client."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from academy.tenants.models import Membership, Tenant


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
