"""The video API: upload, the seed's VideoDetailView (jobbox's read path), HLS playback.

docs/reference/http-api.md and invariants 1 and 5: every view authenticates through jobbox's
cached principals, reads status Redis-first, and answers another tenant's video exactly
like a missing one.
"""

import posixpath
import re
from typing import ClassVar

from django.conf import settings
from django.http import FileResponse
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from academy import schema
from academy.control_views import JobActionView, JobLogView
from academy.text_fields import control_character_problem
from academy.videos import services, storage
from academy.videos.models import Video
from academy.videos.tracking import VideoTracking
from academy.web import messages
from jobbox import CachedAuthAPIView, JobNotFound, JobStatusAPIView, read_job

# The multipart envelope and the title around the file; a body larger than the file limit
# plus this is refused before it is read.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
TITLE_MAX_CHARS = Video._meta.get_field("title").max_length
# HLS names the worker writes: `master.m3u8`, `360p.m3u8`, `360p_0001.ts`. Nothing else
# (no slash, no dot-dot) can name a file, so no path can leave the video's folder.
HLS_FILE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}\.(m3u8|ts)$")
HLS_CONTENT_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}
# Each attempt writes its own folder, so a file never changes once READY points at it;
# private: only this tenant may see it.
HLS_CACHE_CONTROL = "private, max-age=3600"


def _bad_request(detail: str, code: str = "invalid") -> Response:
    return Response({"detail": messages.in_active_language(detail), "code": code},
                    status=status.HTTP_400_BAD_REQUEST)


@schema.video_upload
class VideoUploadView(CachedAuthAPIView):
    """POST /api/videos/ (multipart `file`, `title`) → 201 with the UPLOADED video."""

    parser_classes: ClassVar[list[type]] = [MultiPartParser]

    def post(self, request: Request) -> Response:
        tenant = self.request_tenant(request)
        limit = settings.VIDEO_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + MULTIPART_OVERHEAD_BYTES:
            return _bad_request(f"The file is larger than the limit of {limit} bytes.",
                                "file_too_large")
        upload = request.FILES.get("file")
        title = str(request.data.get("title") or "").strip()
        if upload is None:
            return _bad_request("A video file is required (multipart field `file`).",
                                "missing_field")
        if not title or len(title) > TITLE_MAX_CHARS:
            return _bad_request(f"A title of 1 to {TITLE_MAX_CHARS} characters is required.",
                                "bad_title")
        problem = control_character_problem("title", title)
        if problem:
            return _bad_request(problem, "control_character")
        try:
            video = services.upload_video(
                tenant_id=int(tenant), uploaded_by_id=request.user.pk, title=title,
                upload=upload,
            )
        except services.VideoRejected as exc:
            return _bad_request(str(exc), exc.code)
        job = VideoTracking()
        return Response(job.render(job.snapshot_fields(video), None),
                        status=status.HTTP_201_CREATED)


@schema.video_detail
class VideoDetailView(JobStatusAPIView):
    """GET /api/videos/<id>/ — zero SQL while PROCESSING and within 1 h of READY / FAILED."""

    kind = "video"


@schema.video_hls_file
class VideoHLSFileView(CachedAuthAPIView):
    """GET /api/videos/<id>/hls/<file> — a READY video's playlists and segments, its tenant only.

    The status check is jobbox's Redis-first read, so serving a segment costs no SQL.
    """

    def get(self, request: Request, job_id: str, file_name: str) -> FileResponse:
        match = HLS_FILE_NAME.match(file_name)
        if not match:
            raise NotFound()
        try:
            body = read_job("video", job_id, tenant=self.request_tenant(request))
        except JobNotFound:
            raise NotFound() from None
        if body["status"] != Video.Status.READY or not body["hls_path"]:
            raise NotFound()
        name = posixpath.join(posixpath.dirname(body["hls_path"]), file_name)
        try:
            handle = storage.open_file(name)
        except FileNotFoundError:
            raise NotFound() from None
        response = FileResponse(handle, content_type=HLS_CONTENT_TYPES[match.group(1)])
        response["Cache-Control"] = HLS_CACHE_CONTROL
        return response


@schema.video_cancel
class VideoCancelView(JobActionView):
    """POST /api/videos/<id>/cancel/ — 202 CANCELLED (again: a no-op); 409 once it ended."""

    kind = "video"
    service = staticmethod(lambda job_id, tenant: services.cancel_video(int(job_id),
                                                                       tenant_id=tenant))


@schema.video_retry
class VideoRetryView(JobActionView):
    """POST /api/videos/<id>/retry/ — a FAILED or CANCELLED video as its next attempt."""

    kind = "video"
    service = staticmethod(lambda job_id, tenant: services.retry_video(int(job_id),
                                                                      tenant_id=tenant))


@schema.job_log
class VideoLogView(JobLogView):
    """GET /api/videos/<id>/log/ — the transcode's own log lines."""

    kind = "video"
