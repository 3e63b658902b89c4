"""The toy project's routes: jobbox's own, and one status view for the toy job kind."""

from django.urls import include, path

from tests.library.toyapp.tracking import ChoreStatusView

urlpatterns = [
    path("", include("jobbox.http.urls")),
    path("api/chores/<str:job_id>/", ChoreStatusView.as_view()),
]
