"""DRF authentication classes over the principal cache (docs/explanation/invariants.md,
invariant 1).

A project lists them in `REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]` (jobbox's own
views use them whatever the settings). A request with an `Authorization` header is the token
class's alone: a malformed header or an unknown or inactive token is a 401, never a
fall-through to the session (which would skip CSRF).
"""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from jobbox.auth.principals import has_authorization_header, principal_for_request


class CachedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, resolved through the principal cache."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, None] | None:
        if not has_authorization_header(request._request):
            return None
        principal = principal_for_request(request)
        if principal is None or not principal.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return principal.as_user(), None


class CachedSessionAuthentication(authentication.SessionAuthentication):
    """Session login (the web page), resolved through the principal cache; CSRF enforced."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, None] | None:
        if has_authorization_header(request._request):
            return None  # the token class answers for it
        principal = principal_for_request(request)
        if principal is None or not principal.is_active:
            return None
        self.enforce_csrf(request)
        return principal.as_user(), None
