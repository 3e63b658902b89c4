from django.urls import include, path

from academy.ai.views import (
    AIJobCreateView,
    AIJobReportView,
    AIJobResultPagesView,
    JobStatusView,
)
from academy.schema import schema_view
from academy.videos.views import VideoDetailView, VideoHLSFileView, VideoUploadView

urlpatterns = [
    path("api/schema/", schema_view, name="api-schema"),  # OpenAPI 3 (drf-spectacular)
    path("api/videos/", VideoUploadView.as_view(), name="video-upload"),
    path("api/videos/<str:job_id>/", VideoDetailView.as_view(), name="video-detail"),
    path("api/videos/<str:job_id>/hls/<str:file_name>", VideoHLSFileView.as_view(),
         name="video-hls-file"),
    path("api/ai/jobs/", AIJobCreateView.as_view(), name="ai-job-create"),
    path("api/ai/jobs/<str:job_id>/", JobStatusView.as_view(), name="ai-job-status"),
    path("api/ai/jobs/<str:job_id>/report/", AIJobReportView.as_view(), name="ai-job-report"),
    path("api/ai/jobs/<str:job_id>/result/<str:section>/", AIJobResultPagesView.as_view(),
         name="ai-job-result-pages"),
    path("", include("academy.webhooks.urls")),
    path("", include("jobbox.http.urls")),  # the job box, its stream, /metrics, /healthz
    path("", include("academy.web.urls")),
]
