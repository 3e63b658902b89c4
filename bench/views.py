"""The ways of serving a poll that jobbox is compared against (docs/how-to/benchmarks.md).

- `BeforeStatusView`: the seed's current system. Stock DRF token authentication (a SELECT per
  request), the user's tenant read from the membership, the job row read through the ORM on
  every poll; progress from Redis, where the seed already keeps it.
- `SeedStatusView`: the seed document's code paths as written: Redis first, no fill on a
  miss (every miss reads the database again), no tenant check on a video hit, and a DONE AI
  job's result read from the database. Authentication stays DRF's stock token auth, which the
  seed does not change.
- `redis_get`: one Redis GET through the same server stack, no authentication: the ceiling.

Bodies render through the job's `TrackedJob.render`, the same representation jobbox serves,
so every variant answers the same bytes and only the path to them differs.

Serves docs/explanation/architecture.md, "What we measured": the "before" row.
"""

import contextlib
from typing import Any, ClassVar

from django.db import models
from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy.tenants.services import tenant_id_for_user
from jobbox import InvalidJobId, Progress, TrackedJob, keys, read, registry
from jobbox.client import RedisUnavailable, get_redis, redis_errors


class StockAuthView(APIView):
    """DRF as a Django team ships it: token authentication that reads the database."""

    authentication_classes: ClassVar[list[type]] = [TokenAuthentication]
    permission_classes: ClassVar[list[type]] = [IsAuthenticated]
    renderer_classes: ClassVar[list[type]] = [JSONRenderer]
    kind: ClassVar[str]

    def tracked(self) -> TrackedJob:
        return registry.get(self.kind)

    def parse(self, raw_id: str) -> str:
        try:
            return self.tracked().parse_id(raw_id)
        except InvalidJobId:
            raise NotFound() from None

    def load_row(self, request: Request, job_id: str) -> models.Model:
        """The tenant's row or 404: one SELECT for the tenant, one for the job."""
        job = self.tracked()
        tenant = tenant_id_for_user(request.user)
        row = job.model._default_manager.filter(
            **{job.id_field: job_id, job.tenant_field: tenant}
        ).first()
        if row is None:
            raise NotFound()
        return row


def read_progress(job: TrackedJob, job_id: str) -> Progress | None:
    """The progress hash alone (the seed's existing Redis progress); None while Redis is down."""
    with contextlib.suppress(RedisUnavailable), redis_errors():
        return Progress.from_hash(
            get_redis().hgetall(keys.progress_key(job.progress_namespace, job_id))
        )
    return None


class BeforeStatusView(StockAuthView):
    """Every poll reads the database (the seed's "Before")."""

    def get(self, request: Request, job_id: str) -> Response:
        job = self.tracked()
        parsed = self.parse(job_id)
        row = self.load_row(request, parsed)
        return Response(job.render(job.snapshot_fields(row), read_progress(job, parsed)))


class SeedStatusView(StockAuthView):
    """The seed document's VideoDetailView / JobStatusView paths, as written."""

    # The seed's JobStatusView reads a finished job's result from the database on every poll.
    terminal_reads_database: ClassVar[bool] = False

    def get(self, request: Request, job_id: str) -> Response:
        job = self.tracked()
        parsed = self.parse(job_id)
        cached = read.read_cached(self.kind, parsed)  # Redis only: None on a miss or down
        if cached is not None:
            snapshot, progress = cached
            if snapshot.status in job.running_statuses:
                return Response(job.render(snapshot.fields, progress))
            if snapshot.terminal and not self.terminal_reads_database:
                return Response(job.render(snapshot.fields, progress))
            if snapshot.terminal:
                row = self.load_row(request, parsed)
                return Response(job.render(job.snapshot_fields(row), progress))
        # A miss (or a queued job, or Redis down): the database, and nothing is stored.
        row = self.load_row(request, parsed)
        return Response(job.render(job.snapshot_fields(row), read_progress(job, parsed)))


def redis_get(request: HttpRequest, job_id: str) -> HttpResponse:
    """One GET of a video's status key, unauthenticated: what the stack costs with no work."""
    try:
        key = keys.status_key("video", job_id)
    except keys.InvalidKeyPart:
        return HttpResponse(status=404)
    body: Any = b""
    with contextlib.suppress(RedisUnavailable), redis_errors():
        body = get_redis().get(key) or b""
    return HttpResponse(body, content_type="application/json")


def status_views(kind: str, *, terminal_reads_database: bool) -> dict[str, Any]:
    """The "before" and "seed as written" views of one job kind."""
    before = type(f"Before{kind.title()}View", (BeforeStatusView,), {"kind": kind})
    seed = type(
        f"Seed{kind.title()}View",
        (SeedStatusView,),
        {"kind": kind, "terminal_reads_database": terminal_reads_database},
    )
    return {"before": before.as_view(), "seed": seed.as_view()}
