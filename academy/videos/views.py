"""The video API: the seed's VideoDetailView, served by jobbox's read path."""

from jobbox.views import JobStatusAPIView


class VideoDetailView(JobStatusAPIView):
    """GET /api/videos/<id>/ — zero SQL while PROCESSING and within 1 h of READY / FAILED."""

    kind = "video"
