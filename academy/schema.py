"""The API's OpenAPI schema: the shapes of the service's answers and `/api/schema/`.

docs/reference/http-api.md (paths and field names are the contract). Serializers here describe
shapes only; the views render their bodies as they always did (`TrackedJob.render`), and the
tests fuzz the API against this schema (tests/service/test_api_schema.py): no 5xx, every answer
conforming. jobbox's own views carry their shapes (`jobbox.http.schema`).
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers

from academy.ai.models import AIJobModel
from academy.videos.models import Video
from jobbox.http.schema import ErrorShape

# Paths of the service's own routes are documented; /api/schema/ itself is not (settings).
schema_view = SpectacularAPIView.as_view()


class CachedSessionScheme(OpenApiAuthenticationExtension):
    """The web page's session login (a signed cookie), as jobbox's session class reads it."""

    target_class = "jobbox.auth.drf.CachedSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


class RefusalShape(ErrorShape):
    code = serializers.CharField(required=False, help_text="A stable reason, for a program.")


class VideoShape(serializers.Serializer):
    """The seed's VideoDetailView fields, always all of them."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=Video.Status.choices)
    hls_path = serializers.CharField(allow_null=True)
    duration = serializers.IntegerField(allow_null=True, help_text="Seconds.")
    error_reason = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField(help_text="1, then one more per retry.")
    previous_attempts = serializers.ListField(
        child=serializers.JSONField(), help_text="Earlier runs: attempt, status, reason.")
    encoding_progress = serializers.FloatField(allow_null=True, help_text="0-100.")
    encoding_step_index = serializers.IntegerField(allow_null=True)
    encoding_step_total = serializers.IntegerField(allow_null=True)
    encoding_step_name = serializers.CharField(allow_null=True)
    encoding_step_percent = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Seconds left while PROCESSING, null until estimable.")
    updated_at = serializers.CharField(help_text="ISO 8601.")


class VideoUploadShape(serializers.Serializer):
    file = serializers.FileField()
    title = serializers.CharField(max_length=Video._meta.get_field("title").max_length)


class AIJobProgressShape(serializers.Serializer):
    percent = serializers.FloatField(allow_null=True)
    step_index = serializers.IntegerField(allow_null=True)
    step_total = serializers.IntegerField(allow_null=True)
    step_name = serializers.CharField(allow_null=True)
    step_percent = serializers.FloatField(allow_null=True)


class AIJobShape(serializers.Serializer):
    """The seed's JobStatusView fields."""

    job_id = serializers.CharField()
    job_type = serializers.CharField()
    status = serializers.ChoiceField(choices=AIJobModel.Status.choices)
    progress = AIJobProgressShape(allow_null=True, help_text="While PROCESSING, else null.")
    error_message = serializers.CharField(allow_null=True)
    result = serializers.JSONField(allow_null=True, help_text="The job type's result.")
    attempt = serializers.IntegerField(help_text="1, then one more per retry.")
    previous_attempts = serializers.ListField(
        child=serializers.JSONField(), help_text="Earlier runs: attempt, status, reason.")
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Seconds left while PROCESSING, null until estimable.")


class AIJobSubmitShape(serializers.Serializer):
    file = serializers.FileField()
    job_type = serializers.CharField()


_ERRORS = {401: ErrorShape, 404: ErrorShape}
_BINARY = OpenApiResponse(OpenApiTypes.BINARY)


class ResultPageShape(serializers.Serializer):
    """One page of a list in a DONE job's full result (its students, its bad rows)."""

    section = serializers.CharField()
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    page_size = serializers.IntegerField()
    items = serializers.ListField(child=serializers.JSONField())


class JobLogShape(serializers.Serializer):
    """The job's own log lines, oldest first (bounded; the newest kept)."""

    status = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField())


def _control(shape: type[serializers.Serializer]) -> object:
    """Cancel and retry: 202 with the job as it is now, 409 when the job's state forbids it."""
    return extend_schema_view(post=extend_schema(
        request=None, responses={202: shape, 409: RefusalShape, **_ERRORS}))


def _upload(request: type[serializers.Serializer], created: type[serializers.Serializer],
            refusal: type[serializers.Serializer]) -> object:
    return extend_schema_view(post=extend_schema(
        request={"multipart/form-data": request},
        responses={201: created, 400: refusal, 413: ErrorShape, 415: ErrorShape, **_ERRORS},
    ))


video_upload = _upload(VideoUploadShape, VideoShape, ErrorShape)
video_detail = extend_schema_view(get=extend_schema(responses={200: VideoShape, **_ERRORS}))
video_hls_file = extend_schema_view(get=extend_schema(responses={
    (200, "application/vnd.apple.mpegurl"): _BINARY, (200, "video/mp2t"): _BINARY, **_ERRORS}))
ai_job_submit = _upload(AIJobSubmitShape, AIJobShape, RefusalShape)
ai_job_status = extend_schema_view(get=extend_schema(responses={200: AIJobShape, **_ERRORS}))
ai_job_result_pages = extend_schema_view(get=extend_schema(
    parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
    responses={200: ResultPageShape, **_ERRORS}))
ai_job_report = extend_schema_view(get=extend_schema(responses={
    (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): _BINARY,
    **_ERRORS}))
video_cancel = video_retry = _control(VideoShape)
ai_job_cancel = ai_job_retry = _control(AIJobShape)
job_log = extend_schema_view(get=extend_schema(responses={200: JobLogShape, **_ERRORS}))
