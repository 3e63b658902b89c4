"""The benchmark servers' URLs: the service's own (academy.urls) plus the baselines under
/bench/ (bench.views). The AI job baselines exist when the AI app is installed.

Serves docs/explanation/architecture.md, "The three parts": bench.
"""

from django.apps import apps
from django.urls import path

from academy.urls import urlpatterns as service_urlpatterns
from bench import views
from jobbox import registry

# The job kind the AI app registers (issue: AI jobs are built in parallel; found, not assumed).
AI_APP = "academy.ai"


def ai_kind() -> str | None:
    """The registered job kind of the AI app, or None while that app is not installed."""
    if not apps.is_installed(AI_APP):
        return None
    for job in registry.all_jobs():
        if job.model._meta.app_config.name == AI_APP:
            return job.kind
    return None


_video = views.status_views("video", terminal_reads_database=False)
urlpatterns = [
    *service_urlpatterns,
    path("bench/before/videos/<str:job_id>/", _video["before"]),
    path("bench/seed/videos/<str:job_id>/", _video["seed"]),
    path("bench/redis-get/<str:job_id>/", views.redis_get),
]
if (_ai := ai_kind()) is not None:
    _ai_views = views.status_views(_ai, terminal_reads_database=True)
    urlpatterns += [
        path("bench/before/ai/jobs/<str:job_id>/", _ai_views["before"]),
        path("bench/seed/ai/jobs/<str:job_id>/", _ai_views["seed"]),
    ]
