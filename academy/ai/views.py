"""The AI job API: submit a sheet, the seed's JobStatusView, the full result page by page,
and the report download.

Thin: the services decide, the views translate. Every call is authenticated
through jobbox's cached principal and tenant-checked; another tenant's job and a missing one
answer the same 404, and refusals carry a code and a message, never exception text.
"""

from typing import ClassVar

from django.conf import settings
from django.http import FileResponse
from django.utils import translation
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from academy import schema
from academy.ai import services, storage
from academy.ai.models import AIJobModel
from academy.ai.tracking import JOB_ID_PATTERN, KIND
from academy.ai.uploads import UploadRefused
from academy.control_views import JobActionView, JobLogView
from academy.text_fields import control_character_problem
from academy.web import messages
from jobbox import CachedAuthAPIView, JobStatusAPIView, registry

# Multipart framing around the file: a request longer than the file limit plus this is
# refused before its body is read.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@schema.ai_job_submit
class AIJobCreateView(CachedAuthAPIView):
    """POST /api/ai/jobs/ (multipart `file`, `job_type`) → 201 with the job, or 400."""

    parser_classes: ClassVar[list[type]] = [MultiPartParser]

    def post(self, request: Request) -> Response:
        tenant = self.request_tenant(request)
        if _declared_length(request) > settings.AI_UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
            return _refused(UploadRefused("file_too_large", "The upload is too large."))
        upload = request.FILES.get("file")
        job_type = request.data.get("job_type")
        if upload is None or not isinstance(job_type, str) or not job_type:
            return _refused(UploadRefused(
                "missing_field", "Send the sheet as `file` and its `job_type`."))
        problem = control_character_problem("job_type", job_type)
        if problem:
            return _refused(UploadRefused("control_character", problem))
        try:
            job = services.ai_job_submit(
                tenant_id=int(tenant), created_by_id=request.user.pk, job_type=job_type,
                content=upload, size_bytes=upload.size, language=asker_language(request),
            )
        except UploadRefused as refusal:
            return _refused(refusal)
        row = AIJobModel.objects.get(job_id=job.job_id)
        tracked = registry.get(KIND)
        body = tracked.render(tracked.snapshot_of(row).fields, None)
        return Response(body, status=status.HTTP_201_CREATED)


@schema.ai_job_status
class JobStatusView(JobStatusAPIView):
    """GET /api/ai/jobs/<job_id>/ — zero SQL while PENDING / PROCESSING and within 1 h of
    DONE / FAILED, the result included (up to AI_RESULT_INLINE_MAX_BYTES)."""

    kind = KIND


@schema.ai_job_report
class AIJobReportView(CachedAuthAPIView):
    """GET /api/ai/jobs/<job_id>/report/ — the .xlsx report, for the job's tenant only."""

    def get(self, request: Request, job_id: str) -> FileResponse:
        job = _done_job(job_id, tenant=self.request_tenant(request))
        if not job.report.name:
            raise NotFound()
        return FileResponse(
            storage.open_file(job.report.name), as_attachment=True,
            filename=f"report-{job.job_id[:8]}.xlsx",
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )


@schema.ai_job_result_pages
class AIJobResultPagesView(CachedAuthAPIView):
    """GET /api/ai/jobs/<job_id>/result/<section>/?page=N&page_size=M — one page of a list in
    a DONE job's full result (its students, its bad rows), for the job's tenant only.

    A poll carries a large result as a summary whose `pages` link here (academy.ai.tracking). Not
    a hot path: a page is read when a person turns it, one row read per page.
    """

    def get(self, request: Request, job_id: str, section: str) -> Response:
        job = _done_job(job_id, tenant=self.request_tenant(request))
        items = job.result.get(section) if isinstance(job.result, dict) else None
        if not isinstance(items, list):
            raise NotFound()
        page_size = _positive(request.query_params.get("page_size"),
                              default=settings.AI_RESULT_PAGE_SIZE,
                              most=settings.AI_RESULT_PAGE_SIZE_MAX)
        pages = max(1, -(-len(items) // page_size))
        page = _positive(request.query_params.get("page"), default=1, most=pages)
        start = (page - 1) * page_size
        return Response({
            "section": section, "count": len(items), "page": page, "pages": pages,
            "page_size": page_size, "items": items[start:start + page_size],
        })


def _done_job(job_id: str, *, tenant: str) -> AIJobModel:
    """The tenant's DONE job; a malformed id, another tenant's, a missing or an unfinished
    job are all the same 404."""
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NotFound()
    try:
        job = services.get_ai_job_for_tenant(job_id=job_id, tenant_id=tenant)
    except services.AIJobNotFound:
        raise NotFound() from None
    if job.status != AIJobModel.Status.DONE:
        raise NotFound()
    return job


def asker_language(request: Request) -> str:
    """The language the person asked in: the one they chose on the page (its cookie), else
    their Accept-Language, else the site's (Korean)."""
    return translation.get_supported_language_variant(
        translation.get_language_from_request(request))


def _positive(raw: str | None, *, default: int, most: int) -> int:
    """A whole number from the query, clamped to 1..most; anything else is the default."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    return max(1, min(most, value))


def _declared_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Django refuses a malformed length itself when it reads the body


def _refused(refusal: UploadRefused) -> Response:
    detail = messages.in_active_language(refusal.message, code=refusal.code)
    return Response({"detail": detail, "code": refusal.code},
                    status=status.HTTP_400_BAD_REQUEST)


@schema.ai_job_cancel
class AIJobCancelView(JobActionView):
    """POST /api/ai/jobs/<job_id>/cancel/ — 202 CANCELLED (again: a no-op); 409 once it ended."""

    kind = KIND
    service = staticmethod(lambda job_id, tenant: services.ai_job_cancel(job_id=job_id,
                                                                        tenant_id=tenant))


@schema.ai_job_retry
class AIJobRetryView(JobActionView):
    """POST /api/ai/jobs/<job_id>/retry/ — a FAILED or CANCELLED job as its next attempt."""

    kind = KIND
    service = staticmethod(lambda job_id, tenant: services.ai_job_retry(job_id=job_id,
                                                                       tenant_id=tenant))


@schema.job_log
class AIJobLogView(JobLogView):
    """GET /api/ai/jobs/<job_id>/log/ — the job's own log lines."""

    kind = KIND
