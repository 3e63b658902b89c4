"""jobbox's routes, for a project's urlconf: `path("", include("jobbox.http.urls"))`.

The job box, its event stream (served over ASGI), Prometheus metrics and the health check.
A job kind's status view is the project's own (`JobStatusAPIView` subclassed), at its path.
"""

from django.urls import path

from jobbox.http.ops import healthz, metrics_view
from jobbox.http.views import JobBoxView, job_box_stream

urlpatterns = [
    path("api/jobbox/", JobBoxView.as_view(), name="jobbox"),
    path("api/jobbox/stream", job_box_stream, name="jobbox-stream"),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
]
