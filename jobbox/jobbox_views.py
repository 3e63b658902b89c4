"""`GET /api/jobbox/`: all of the caller's running and recently finished jobs in one response.

DESIGN.md, "HTTP API" and invariant 1: served on the lean sync (WSGI) path, zero SQL on a
hit (cached authentication, `jobbox_index.read_box`'s one round trip); an `ETag` over the
body lets an unchanged box answer 304. The tenant and the owner both come from the cached
principal, and every job in the answer is checked against both.
"""

from django.http import HttpResponse
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from jobbox.auth import principal_of
from jobbox.client import RedisUnavailable
from jobbox.jobbox_index import box_from_database, read_box
from jobbox.views import JobboxAPIView

# The last event id at the moment the box was read: a stream opened from it misses nothing.
EVENT_ID_HEADER = "X-Jobbox-Event-Id"


class JobBoxAPIView(JobboxAPIView):
    """GET the caller's job box; 304 when `If-None-Match` names the current body."""

    def get(self, request: Request) -> HttpResponse:
        tenant = self.request_tenant(request)
        principal = principal_of(request.user)
        if principal is None:
            raise NotFound()
        try:
            box = read_box(tenant=tenant, owner=str(principal.user_id))
        except RedisUnavailable:
            # DESIGN.md, invariant 6: degraded, answered from the database (bounded queries).
            box = box_from_database(tenant=tenant, owner=str(principal.user_id))
        if box.etag in _etags(request.headers.get("If-None-Match", "")):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(box.body, content_type="application/json")
        response["ETag"] = box.etag
        response["Cache-Control"] = "private, no-cache"
        response[EVENT_ID_HEADER] = box.last_event_id
        return response


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
