"""The seed's Video: UPLOADED → PROCESSING → READY / FAILED / CANCELLED, versioned for jobbox."""

from django.conf import settings
from django.db import models


class Video(models.Model):
    class Status(models.TextChoices):
        UPLOADED = "UPLOADED"
        PROCESSING = "PROCESSING"
        READY = "READY"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="videos")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="videos"
    )
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED)
    source = models.FileField(upload_to="uploads/videos/", blank=True)
    hls_path = models.CharField(max_length=500, blank=True, default="")
    duration = models.PositiveIntegerField(null=True, blank=True)
    error_reason = models.TextField(blank=True, default="")
    leased_by = models.CharField(max_length=200, blank=True, default="")
    leased_until = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The run a person asked for: 1, then one more per retry. `attempts` counts every start
    # (a dead worker's re-queue included) and never goes back, so each start writes its own
    # HLS folder; the reaper's limit counts the starts of this run only.
    attempt = models.PositiveIntegerField(default=1)
    attempts_before_run = models.PositiveIntegerField(default=0)
    # Earlier runs, oldest first: {"attempt", "status", "reason"} each (bounded by the retry
    # limit, academy.videos.services.MAX_ATTEMPT).
    previous_attempts = models.JSONField(default=list, blank=True)
    # The job's own log, copied from Redis when it ends (jobbox.read_log): lines, oldest first.
    log = models.JSONField(default=list, blank=True)
    # When a transcode message was last sent for it: the reaper re-sends one for a video that
    # waited UPLOADED too long (a send lost after commit). Not shown, so not versioned.
    queued_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every transition; Redis applies a snapshot only if its version is newer.
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status"]),
            # The reaper's one query: PROCESSING videos by lease expiry.
            models.Index(
                fields=["leased_until"], name="videos_processing_lease_idx",
                condition=models.Q(status="PROCESSING"),
            ),
            models.Index(
                fields=["queued_at"], name="videos_uploaded_queued_idx",
                condition=models.Q(status="UPLOADED"),
            ),
        ]

    def __str__(self) -> str:
        return f"video {self.pk} ({self.status})"
