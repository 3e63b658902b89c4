"""HTTP views jobbox offers: a status view to subclass per job kind, and the health check.

Thin by design (STYLE.md, 9): authentication is the principal cache, the body comes from
`readers.read_job`, and a missing job, another tenant's job and a malformed id all answer
the same 404 without detail.
"""

from typing import Any, ClassVar

from django.db import connection
from django.http import HttpRequest, JsonResponse
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobbox import errors
from jobbox.auth import CachedSessionAuthentication, CachedTokenAuthentication, principal_of
from jobbox.client import RedisUnavailable, get_redis, redis_errors
from jobbox.readers import JobNotFound, read_job


class JobboxAPIView(APIView):
    """Base for jobbox's API views: cached authentication, JSON only."""

    authentication_classes: ClassVar[list[type]] = [
        CachedTokenAuthentication,
        CachedSessionAuthentication,
    ]
    permission_classes: ClassVar[list[type]] = [IsAuthenticated]
    renderer_classes: ClassVar[list[type]] = [JSONRenderer]

    def get_exception_handler(self):  # noqa: ANN201 - DRF's signature
        # The database down answers 503 on jobbox's views whatever the project's settings.
        return errors.exception_handler

    def request_tenant(self, request: Request) -> str:
        principal = principal_of(request.user)
        if principal is None or principal.tenant is None:
            raise NotFound()  # a user outside every tenant sees no job at all
        return principal.tenant


class JobStatusAPIView(JobboxAPIView):
    """GET one job's representation; subclasses set `kind`."""

    kind: ClassVar[str]

    def get(self, request: Request, job_id: str) -> Response:
        try:
            body: dict[str, Any] = read_job(self.kind, job_id, tenant=self.request_tenant(request))
        except JobNotFound:
            raise NotFound() from None
        return Response(body)


def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the service can answer polls (Redis or the database up), 503 otherwise."""
    checks = {"redis": _redis_ok(), "database": _database_ok()}
    healthy = any(checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable",
         **{name: "ok" if ok else "down" for name, ok in checks.items()}},
        status=200 if healthy else 503,
    )


def _redis_ok() -> bool:
    try:
        with redis_errors():
            return bool(get_redis().ping())
    except RedisUnavailable:
        return False


def _database_ok() -> bool:
    try:
        connection.ensure_connection()
        return connection.is_usable()
    except Exception:
        return False
