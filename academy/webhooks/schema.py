"""The webhook API's shapes in the OpenAPI schema (served at /api/schema/, fuzzed by tests)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from academy.webhooks.models import EVENT_TYPES, Delivery
from jobbox.http.schema import ErrorShape


class EndpointRequestShape(serializers.Serializer):
    url = serializers.CharField(help_text="http or https; no credentials; a public address.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES))


class EndpointShape(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(help_text="ISO 8601.")


class EndpointWithSecretShape(EndpointShape):
    secret = serializers.CharField(help_text="`whsec_…`: shown only in this answer.")


class EndpointListShape(serializers.Serializer):
    endpoints = EndpointShape(many=True)


class DeliveryShape(serializers.Serializer):
    id = serializers.CharField(help_text="The `webhook-id` header: the same on every attempt.")
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    response_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    created_at = serializers.CharField()
    delivered_at = serializers.CharField(allow_null=True)
    next_attempt_at = serializers.CharField(allow_null=True)


class DeliveryListShape(serializers.Serializer):
    deliveries = DeliveryShape(many=True)


# A refused registration: each field's problems, or `detail` for a body that is no form at all.
INVALID_ENDPOINT = OpenApiResponse(OpenApiTypes.OBJECT, description=(
    "`{field: [problems]}` for `url` and `events`, or `{detail}` for an unreadable body."))


_ERRORS = {401: ErrorShape, 403: ErrorShape, 404: ErrorShape}

endpoints = extend_schema_view(
    get=extend_schema(responses={200: EndpointListShape, **_ERRORS}),
    post=extend_schema(request=EndpointRequestShape, responses={
        201: EndpointWithSecretShape, 400: INVALID_ENDPOINT, 409: ErrorShape, 415: ErrorShape,
        **_ERRORS}),
)
endpoint = extend_schema_view(
    get=extend_schema(responses={200: EndpointShape, **_ERRORS}),
    delete=extend_schema(responses={204: OpenApiResponse(description="Removed."), **_ERRORS}),
)
secret = extend_schema_view(post=extend_schema(
    request=None, responses={200: EndpointWithSecretShape, **_ERRORS}))
enable = extend_schema_view(post=extend_schema(
    request=None, responses={200: EndpointShape, **_ERRORS}))
deliveries = extend_schema_view(get=extend_schema(responses={200: DeliveryListShape, **_ERRORS}))
