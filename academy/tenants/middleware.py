"""Sets `request.tenant`, lazily: resolving it costs nothing unless a view uses the model.

Hot paths use the cached principal's tenant id (jobbox.auth) and never touch this object,
so a poll stays at zero SQL; a page that needs the tenant's name reads it once.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from academy.tenants.models import Tenant
from jobbox import principal_for_request


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tenant = SimpleLazyObject(lambda: _tenant_of(request))
        return self.get_response(request)


def _tenant_of(request: HttpRequest) -> Tenant | None:
    principal = principal_for_request(request)
    if principal is None or principal.tenant is None:
        return None
    return Tenant.objects.filter(pk=principal.tenant).first()
