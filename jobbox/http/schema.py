"""The shapes of jobbox's HTTP answers, for an OpenAPI schema (docs/reference/http-api.md).

DRF serializers used for their shape only (never to render: the bodies come from
`jobbox.read` and `jobbox.box` as they are). `extend_schema` is drf-spectacular's when the
project has it installed, and does nothing otherwise: jobbox does not require it.
"""

from collections.abc import Callable
from typing import Any

from rest_framework import serializers

try:
    from drf_spectacular.utils import extend_schema
except ImportError:  # the project serves no schema: annotations are no-ops

    def extend_schema(*_: Any, **__: Any) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda view: view


class ErrorShape(serializers.Serializer):
    detail = serializers.CharField()


class BoxEntryShape(serializers.Serializer):
    kind = serializers.CharField(help_text="The job's kind (`video`, `ai_job`, ...).")
    id = serializers.CharField()
    version = serializers.IntegerField(
        help_text="The job's version: sent back in `X-Jobbox-Versions`, no entry is "
                  "answered older.")
    job = serializers.DictField(
        help_text="The job's representation, as its own endpoint answers it; only "
                  "`status` when `truncated` (BOX_ENTRY_MAX_BYTES).")
    truncated = serializers.BooleanField(
        required=False, help_text="Present (true) when the representation was too large.")


class BoxShape(serializers.Serializer):
    jobs = BoxEntryShape(many=True, help_text="Newest change first.")
    omitted = serializers.IntegerField(
        required=False, min_value=1,
        help_text="Present when entries past BOX_MAX_BYTES were left out.")


# The answers every jobbox API view may give besides its own.
UNAUTHENTICATED = {401: ErrorShape}
NOT_FOUND = {404: ErrorShape}
