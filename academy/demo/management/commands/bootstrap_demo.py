"""Create (idempotently) the demo tenants, one user each, and print them as JSON."""

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from academy import installation
from academy.tenants.models import Membership, Tenant

DEMO_TENANTS = [
    ("seoul-academy", "서울 아카데미", "seoul_teacher"),
    ("busan-academy", "부산 아카데미", "busan_teacher"),
]


def demo_password(username: str) -> str:
    # Random per installation and kept under .run/, so re-running prints the same one and
    # nobody can compute it from the code.
    return installation.demo_password(settings.RUN_DIR, username)


class Command(BaseCommand):
    help = "Create the demo tenants and users (idempotent) and print them as JSON on stdout."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            tenants = [self._tenant(*spec) for spec in DEMO_TENANTS]
        self.stdout.write(json.dumps({"tenants": tenants}, ensure_ascii=False))

    def _tenant(self, slug: str, name: str, username: str) -> dict[str, Any]:
        tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name})
        user, created = get_user_model().objects.get_or_create(username=username)
        password = demo_password(username)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        # Each demo user administers their academy (its webhooks, among others).
        Membership.objects.update_or_create(user=user, defaults={"tenant": tenant, "role": "admin"})
        token, _ = Token.objects.get_or_create(user=user)
        return {
            "slug": slug,
            "users": [{"username": username, "password": password, "token": token.key}],
        }
