"""The database down: a clear 503, never a traceback (docs/explanation/invariants.md, invariant 7).

Polls of jobs Redis knows about never reach the database and keep answering; whatever does
need it while it is unreachable ends here: `{"detail": ...}` with status 503 and a
`Retry-After`, no exception text. `exception_handler` serves DRF views (jobbox's views use
it on their own; a project sets it as REST_FRAMEWORK["EXCEPTION_HANDLER"] for the rest),
`DatabaseUnavailableMiddleware` serves plain Django views.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobbox.metrics import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

# Errors that mean "the database cannot be reached", not a bug in a query.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
DETAIL = "The service is temporarily unavailable. Please retry shortly."
# Clients poll about once a second; asking them to back off a little spares a recovering DB.
RETRY_AFTER_SECONDS = 5
# One warning per this interval, not one per failed request: an outage must not flood logs.
WARNING_INTERVAL_SECONDS = 30.0

_warned_at = 0.0
_warn_lock = threading.Lock()


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 503 for an unreachable database."""
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        _record(exc)
        return Response({"detail": DETAIL}, status=503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return drf_exception_handler(exc, context)


class DatabaseUnavailableMiddleware:
    """The same 503 for views outside DRF."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
            return None
        _record(exc)
        response = JsonResponse({"detail": DETAIL}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _record(exc: Exception) -> None:
    global _warned_at
    DATABASE_UNAVAILABLE.inc()
    now = time.monotonic()
    with _warn_lock:
        due = now - _warned_at >= WARNING_INTERVAL_SECONDS
        if due:
            _warned_at = now
    if due:
        logger.warning("jobbox: database unavailable (%s); answering 503", type(exc).__name__)
