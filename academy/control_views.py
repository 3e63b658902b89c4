"""Cancel, retry and the log of a job, one set of views for both job kinds.

Thin (the services decide): each call is authenticated through jobbox's cached principal
and tenant-checked, another tenant's job answers the same 404 as a missing one, and a state
that forbids the action answers 409 with a stable code. The log of a running job is read
from Redis with the job's Redis-first read as its tenant check, so it costs no SQL; a
finished job's log is the one kept on its row.
"""

from collections.abc import Callable
from typing import Any, ClassVar

from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from academy.outcomes import Outcome
from jobbox import (
    CachedAuthAPIView,
    InvalidJobId,
    JobNotFound,
    RedisUnavailable,
    read_job,
    read_log,
    registry,
)

# An action's service: (job id, tenant id) → what happened.
Action = Callable[[str, int], Outcome]

ACCEPTED = frozenset({Outcome.OK, Outcome.IDEMPOTENT})


def _refusals() -> dict[Outcome, tuple[str, str]]:
    # Built per call: the messages are in the language of the request being answered.
    return {
        Outcome.TERMINAL: ("finished", _("The job has already finished.")),
        Outcome.INVALID_STATE: ("not_retryable",
                                _("Only a failed or cancelled job can be run again.")),
        Outcome.RETRY_LIMIT: ("retry_limit", _("This job cannot be run again: it has used "
                                               "all its attempts.")),
    }


class JobActionView(CachedAuthAPIView):
    """POST → 202 with the job's representation after the action, 404, or 409."""

    kind: ClassVar[str]
    service: ClassVar[Action]

    def post(self, request: Request, job_id: str) -> Response:
        tenant = self.request_tenant(request)
        parsed = _parsed_id(self.kind, job_id)
        outcome = self.service(parsed, int(tenant))
        if outcome == Outcome.NOT_FOUND:
            raise NotFound()
        if outcome not in ACCEPTED:
            code, detail = _refusals()[outcome]
            return Response({"detail": detail, "code": code}, status=status.HTTP_409_CONFLICT)
        try:
            body: dict[str, Any] = read_job(self.kind, parsed, tenant=tenant)
        except JobNotFound:
            raise NotFound() from None  # deleted since
        return Response(body, status=status.HTTP_202_ACCEPTED)


class JobLogView(CachedAuthAPIView):
    """GET → {"status", "lines"}: zero SQL while the job runs, its row's copy once it ended."""

    kind: ClassVar[str]

    def get(self, request: Request, job_id: str) -> Response:
        tenant = self.request_tenant(request)
        parsed = _parsed_id(self.kind, job_id)
        try:
            body = read_job(self.kind, parsed, tenant=tenant)
        except JobNotFound:
            raise NotFound() from None
        job = registry.get(self.kind)
        lines: list[str] | None = None
        if body["status"] not in job.terminal_statuses:
            try:
                lines = read_log(self.kind, parsed)
            except RedisUnavailable:
                lines = None  # the row's copy below, whatever it holds yet
        if lines is None:
            lines = list(job.model._default_manager.filter(
                **{job.id_field: parsed, job.tenant_field: tenant},
            ).values_list("log", flat=True).first() or [])
        return Response({"status": body["status"], "lines": lines})


def _parsed_id(kind: str, job_id: str) -> str:
    try:
        return registry.get(kind).parse_id(job_id)
    except InvalidJobId:
        raise NotFound() from None
