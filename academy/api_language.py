"""The API answers in the asker's language, as the page does: the language they chose on the
page (its cookie), else their Accept-Language, else the site's (Korean).

Only `/api/` requests: the page picks its own language (academy.web.views). DRF's messages
follow the active language by themselves; the API's own refusals are translated where they
are answered (academy.web.messages.in_active_language). Stored texts (a job's failure reason)
are never translated here: a job's representation is the same bytes for everyone, and the page
translates it.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

API_PREFIX = "/api/"


class ApiLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        language = translation.get_supported_language_variant(
            translation.get_language_from_request(request))
        with translation.override(language):
            return self.get_response(request)
