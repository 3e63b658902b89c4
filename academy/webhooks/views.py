"""The webhook API: an academy's administrators register endpoints and read deliveries.

Every view authenticates through the principal cache like the rest of the API and sees only
the caller's academy: another academy's endpoint is the same 404 as a missing one. Only the
academy's administrators (membership role `admin`) may list or change endpoints; the signing
secret is shown once, when the endpoint is created or its secret is rotated.
"""

import base64
import secrets
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from academy.tenants.models import Membership
from academy.webhooks import schema, targets
from academy.webhooks.models import EVENT_TYPES, Delivery, Endpoint
from jobbox import CachedAuthAPIView

# The deliveries an endpoint's log shows: the newest, enough to see a pattern of failures.
DELIVERIES_SHOWN = 50


class EndpointInput(serializers.Serializer):
    url = serializers.CharField(max_length=targets.URL_MAX_CHARS)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1,
        max_length=len(EVENT_TYPES))

    def validate_url(self, url: str) -> str:
        try:
            targets.allowed_addresses(targets.parse(url))
        except targets.TargetRefused as refused:
            raise ValidationError(str(refused), code=refused.code) from None
        return url


def new_secret() -> str:
    # The Standard Webhooks format: `whsec_` and the key's bytes in base64.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def endpoint_body(endpoint: Endpoint, *, secret: bool = False) -> dict[str, Any]:
    body = {"id": endpoint.id, "url": endpoint.url, "events": endpoint.events,
            "enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason or None,
            "created_at": endpoint.created_at.isoformat()}
    if secret:
        body["secret"] = endpoint.secret
    return body


def delivery_body(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.message_id, "event": delivery.event_type, "status": delivery.status,
        "attempts": delivery.attempts, "status_code": delivery.last_status_code,
        "response_ms": delivery.last_response_ms, "error": delivery.last_error or None,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "next_attempt_at": (delivery.next_attempt_at.isoformat()
                            if delivery.status == Delivery.Status.PENDING else None),
    }


class WebhookAdminView(CachedAuthAPIView):
    parser_classes: ClassVar[list[type]] = [JSONParser]  # anything else: 415

    def administered_tenant(self, request: Request) -> str:
        tenant = self.request_tenant(request)
        user_id = self.request_principal(request).user_id
        if not Membership.objects.filter(user_id=user_id, tenant_id=tenant,
                                         role="admin").exists():
            raise PermissionDenied("Only the academy's administrators manage webhooks.")
        return tenant

    def endpoint(self, request: Request, endpoint_id: str) -> Endpoint:
        tenant = self.administered_tenant(request)
        if not endpoint_id.isdigit() or len(endpoint_id) > 18:
            raise NotFound()
        endpoint = Endpoint.objects.filter(id=int(endpoint_id), tenant_id=tenant).first()
        if endpoint is None:
            raise NotFound()
        return endpoint


@schema.endpoints
class WebhookListView(WebhookAdminView):
    """GET /api/webhooks/: the academy's endpoints; POST: register one (201, secret once)."""

    def get(self, request: Request) -> Response:
        tenant = self.administered_tenant(request)
        endpoints = Endpoint.objects.filter(tenant_id=tenant).order_by("id")
        return Response({"endpoints": [endpoint_body(e) for e in endpoints]})

    def post(self, request: Request) -> Response:
        tenant = self.administered_tenant(request)
        given = EndpointInput(data=request.data)
        given.is_valid(raise_exception=True)
        limit = settings.WEBHOOK_MAX_ENDPOINTS_PER_ACADEMY
        with transaction.atomic():
            if Endpoint.objects.select_for_update().filter(tenant_id=tenant).count() >= limit:
                return Response({"detail": f"An academy has at most {limit} webhook endpoints.",
                                 "code": "too_many_endpoints"}, status=status.HTTP_409_CONFLICT)
            endpoint = Endpoint.objects.create(
                tenant_id=tenant, url=given.validated_data["url"],
                events=sorted(set(given.validated_data["events"])), secret=new_secret(),
                created_by_id=self.request_principal(request).user_id)
        return Response(endpoint_body(endpoint, secret=True), status=status.HTTP_201_CREATED)


@schema.endpoint
class WebhookDetailView(WebhookAdminView):
    """GET /api/webhooks/<id>/; DELETE removes it with its pending deliveries."""

    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(endpoint_body(self.endpoint(request, endpoint_id)))

    def delete(self, request: Request, endpoint_id: str) -> Response:
        self.endpoint(request, endpoint_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@schema.secret
class WebhookSecretView(WebhookAdminView):
    """POST /api/webhooks/<id>/secret/: a new signing secret, shown once; the old one stops."""

    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self.endpoint(request, endpoint_id)
        endpoint.secret = new_secret()
        endpoint.save(update_fields=["secret"])
        return Response(endpoint_body(endpoint, secret=True))


@schema.enable
class WebhookEnableView(WebhookAdminView):
    """POST /api/webhooks/<id>/enable/: send again to an endpoint that was disabled."""

    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self.endpoint(request, endpoint_id)
        endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, "", None
        endpoint.save(update_fields=["enabled", "disabled_reason", "failing_since"])
        return Response(endpoint_body(endpoint))


@schema.deliveries
class WebhookDeliveriesView(WebhookAdminView):
    """GET /api/webhooks/<id>/deliveries/: the newest deliveries, with status and timing."""

    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self.endpoint(request, endpoint_id)
        rows = endpoint.deliveries.order_by("-created_at", "-id")[:DELIVERIES_SHOWN]
        return Response({"deliveries": [delivery_body(d) for d in rows]})
