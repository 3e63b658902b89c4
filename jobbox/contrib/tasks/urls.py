"""Routes for a project's urlconf: `path("", include("jobbox.contrib.tasks.urls"))`."""

from django.urls import path

from jobbox.contrib.tasks.views import TaskStatusAPIView

urlpatterns = [
    path("api/tasks/<str:job_id>/", TaskStatusAPIView.as_view(), name="jobbox-task-status"),
]
