from django.urls import include, path

from academy.videos.views import VideoDetailView
from jobbox.jobbox_views import JobBoxAPIView
from jobbox.metrics import metrics_view
from jobbox.stream import jobbox_stream
from jobbox.views import healthz

urlpatterns = [
    path("api/videos/<str:job_id>/", VideoDetailView.as_view(), name="video-detail"),
    path("api/jobbox/", JobBoxAPIView.as_view(), name="jobbox"),
    path("api/jobbox/stream", jobbox_stream, name="jobbox-stream"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("academy.web.urls")),
]
