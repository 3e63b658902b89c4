"""The job-box web page: sign-in, uploads, and the live job box (docs/explanation/architecture.md,
"The three parts": the reference service's job-box web page).

The page is plain Django templates and one script (no build step); its data comes from the
public API (`/api/jobbox/`, `/api/jobbox/stream`, the upload endpoints), like any client's.
Korean by default: the language is the one the person picked (the language cookie), else
Korean, whatever the browser's Accept-Language says, since the people using it work in Korean.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from academy.login_throttle import throttle_login
from academy.web import messages
from jobbox import principal_for_request

DEFAULT_LANGUAGE = "ko"
# The AI job type the score-sheet form sends (the AI jobs API's contract).
SCORE_SHEET_JOB_TYPE = "excel.grade_report"


def page_language(request: HttpRequest) -> str:
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return chosen if chosen in dict(settings.LANGUAGES) else DEFAULT_LANGUAGE


def in_page_language(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with translation.override(page_language(request)):
            response = view(request, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()  # a TemplateResponse renders here, in the language
        return response

    return wrapped


@never_cache
@in_page_language
def jobbox_page(request: HttpRequest) -> HttpResponse:
    principal = principal_for_request(request)
    if principal is None or not principal.is_active:
        return redirect(f"{settings.LOGIN_URL}?next=/")
    return render(request, "web/jobbox.html", {
        "username": principal.username,
        "has_tenant": principal.tenant is not None,
        "score_sheet_job_type": SCORE_SHEET_JOB_TYPE,
        "languages": settings.LANGUAGES,
        "language": page_language(request),
        "labels": _script_labels(),
    })


def _script_labels() -> dict[str, Any]:
    """The words the page's script shows, in the page's language (Django i18n)."""
    return {
        "status": {"UPLOADED": _("Waiting"), "PENDING": _("Waiting"),
                   "PROCESSING": _("Processing"), "READY": _("Ready"), "DONE": _("Done"),
                   "FAILED": _("Failed"), "CANCELLED": _("Cancelled")},
        "kind": {"video": _("Video"), "ai_job": _("Score sheet")},
        "step": _("Step"),
        "play": _("Play"),
        "download": _("Download the report"),
        "uploaded": _("Uploaded. It appears in your jobs below."),
        "refused": _("The upload was refused:"),
        "failed_upload": _("The upload failed. Please try again."),
        "too_large": _("The file is too large."),
        "live": _("live"),
        "polling": _("updating every few seconds"),
        "connecting": _("connecting"),
        "result": _("Result"),
        "error": _("Error"),
        "notify": {"enable": _("Notify me when a job ends"),
                   "body": _("A job in your job box has ended.")},
        "cancel": _("Cancel"),
        "retry": _("Retry"),
        "log": _("Log"),
        "log_empty": _("No log lines yet."),
        "failed_action": _("That did not work. Please try again."),
        "eta": _("about {time} left"),
        "attempt": _("Attempt"),
        "times": _time_labels(),
        "report": _report_labels(),
        "steps": messages.steps(),
        "reasons": messages.reasons(),
        "refusals": messages.refusals(),
    }


def _time_labels() -> dict[str, str]:
    return {"started": _("Started"), "finished": _("Finished"), "updated": _("Updated")}


def _report_labels() -> dict[str, str]:
    """Headings of the grade report's view (academy.ai.job_types.grade_report's result)."""
    return {
        "student": _("Student"), "total": _("Total"), "average": _("Average"),
        "rank": _("Rank"), "subject": _("Subject"), "count": _("Count"), "mean": _("Mean"),
        "median": _("Median"), "min": _("Min"), "max": _("Max"),
        "stdev": _("Std dev (population)"), "row": _("Row"), "reason": _("Reason"),
        "students": _("Students"), "subjects": _("Subjects"),
        "bad_rows": _("Rows left out"), "rows": _("Rows"), "valid_rows": _("Graded"),
        "chart": _("Scores by subject"),
        "chart_legend": _("Bar: mean. Box: mean ± one standard deviation. Line: lowest "
                          "to highest score."),
        "previous": _("Previous"), "next": _("Next"), "page": _("Page"),
        "loading": _("Loading…"), "sheet": _("Sheet"),
    }


login_view = throttle_login(in_page_language(auth_views.LoginView.as_view(
    template_name="web/login.html", redirect_authenticated_user=False,
    extra_context={"languages": settings.LANGUAGES},
)))
logout_view = auth_views.LogoutView.as_view(next_page=settings.LOGIN_URL)
