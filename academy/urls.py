from django.contrib import admin
from django.urls import include, path

from academy.ai.views import (
    AIJobCancelView,
    AIJobCreateView,
    AIJobLogView,
    AIJobReportView,
    AIJobResultPagesView,
    AIJobRetryView,
    JobStatusView,
)
from academy.schema import schema_view
from academy.videos.views import (
    VideoCancelView,
    VideoDetailView,
    VideoHLSFileView,
    VideoLogView,
    VideoRetryView,
    VideoUploadView,
)

urlpatterns = [
    path("admin/", admin.site.urls),  # Django's admin, for staff
    path("api/schema/", schema_view, name="api-schema"),  # OpenAPI 3 (drf-spectacular)
    path("api/videos/", VideoUploadView.as_view(), name="video-upload"),
    path("api/videos/<str:job_id>/", VideoDetailView.as_view(), name="video-detail"),
    path("api/videos/<str:job_id>/hls/<str:file_name>", VideoHLSFileView.as_view(),
         name="video-hls-file"),
    path("api/videos/<str:job_id>/cancel/", VideoCancelView.as_view(), name="video-cancel"),
    path("api/videos/<str:job_id>/retry/", VideoRetryView.as_view(), name="video-retry"),
    path("api/videos/<str:job_id>/log/", VideoLogView.as_view(), name="video-log"),
    path("api/ai/jobs/", AIJobCreateView.as_view(), name="ai-job-create"),
    path("api/ai/jobs/<str:job_id>/", JobStatusView.as_view(), name="ai-job-status"),
    path("api/ai/jobs/<str:job_id>/report/", AIJobReportView.as_view(), name="ai-job-report"),
    path("api/ai/jobs/<str:job_id>/cancel/", AIJobCancelView.as_view(), name="ai-job-cancel"),
    path("api/ai/jobs/<str:job_id>/retry/", AIJobRetryView.as_view(), name="ai-job-retry"),
    path("api/ai/jobs/<str:job_id>/log/", AIJobLogView.as_view(), name="ai-job-log"),
    path("api/ai/jobs/<str:job_id>/result/<str:section>/", AIJobResultPagesView.as_view(),
         name="ai-job-result-pages"),
    path("", include("academy.webhooks.urls")),
    path("", include("jobbox.http.urls")),  # the job box, its stream, /metrics, /healthz
    path("", include("academy.web.urls")),
]
