"""Video transitions: the seed's `mark_processing`, `complete_video`, `fail_video`, on jobbox.

Each runs in one transaction on the row locked for update, bumps the version through
`jobbox.save_transition`, and so reaches Redis only after commit. Transitions are
idempotent: a duplicate delivery answers "idempotent" and changes nothing.

A worker holds a lease (`leased_by`, `leased_until`) while it transcodes; given its
`worker_id`, the end transitions refuse a worker that no longer holds the lease (the reaper
re-queued its video), so a video ends READY once however many workers touched it.
"""

import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from academy import job_control
from academy.outcomes import Outcome
from academy.queue import send_on_commit
from academy.videos import storage, transcoding
from academy.videos.models import Video
from jobbox import (
    RedisUnavailable,
    publish_on_commit,
    report_progress,
    request_cancel_on_commit,
    save_transition,
)

logger = logging.getLogger(__name__)

# The transcode task's registered name (academy.videos.tasks): sent by name, so this module
# does not import the tasks that call it.
TRANSCODE_TASK = "videos.transcode_video"

# A worker renews its lease while it works; a lease this long survives a slow step but
# lets the reaper hand a dead worker's video to another within minutes.
DEFAULT_LEASE_SECONDS = 5 * 60
# The seed stores at most this much of a failure reason.
ERROR_REASON_MAX_CHARS = 2000
KIND = "video"


class VideoRejected(ValueError):
    """An upload that is refused; `code` is stable, the message safe to show the uploader."""

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


def get_video_for_update(video_id: int) -> Video | None:
    return Video.objects.select_for_update().filter(pk=video_id).first()


@transaction.atomic
def create_video(
    *, tenant_id: int, uploaded_by_id: int | None, title: str, source: str = ""
) -> Video:
    """A new UPLOADED video, its snapshot in Redis after commit (polls of it cost no SQL)."""
    video = Video.objects.create(
        tenant_id=tenant_id, uploaded_by_id=uploaded_by_id, title=title, source=source
    )
    publish_on_commit(video)
    return video


def upload_video(
    *, tenant_id: int, uploaded_by_id: int | None, title: str, upload: UploadedFile
) -> Video:
    """Probe, store and create an UPLOADED video, queued for transcoding after commit.

    Anything that is not a playable video raises `VideoRejected` with nothing stored or queued.
    """
    limit = settings.VIDEO_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise VideoRejected(f"The file is larger than the limit of {limit} bytes.",
                            "file_too_large")
    with tempfile.TemporaryDirectory(prefix="jobbox-upload-") as scratch:
        local = _local_copy(upload, Path(scratch))
        if local.stat().st_size > limit:
            raise VideoRejected(f"The file is larger than the limit of {limit} bytes.",
                                "file_too_large")
        try:
            # Bounded: CPU, memory and wall-clock budgets (VIDEO_PROBE_*), no decoding past
            # two frames; the worker measures it again before it transcodes.
            transcoding.probe(local)
        except transcoding.NotAVideo as exc:
            raise VideoRejected(str(exc), exc.code) from None
        name = storage.save_source(tenant_id=tenant_id, local_path=local)
    try:
        video = create_video(tenant_id=tenant_id, uploaded_by_id=uploaded_by_id,
                             title=title, source=name)
    except BaseException:
        storage.delete(name)  # no row points at it
        raise
    queue_transcode(video.pk)  # after the row's commit (at once outside a transaction)
    return video


def _local_copy(upload: UploadedFile, scratch: Path) -> Path:
    if hasattr(upload, "temporary_file_path"):  # Django spooled it to disk already
        return Path(upload.temporary_file_path())
    local = scratch / "source"
    with local.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return local


def queue_transcode(video_id: int) -> None:
    """Send the video to a worker after commit, noting when (the reaper's resend clock)."""
    Video.objects.filter(pk=video_id).update(queued_at=timezone.now())
    send_on_commit(TRANSCODE_TASK, video_id)


@transaction.atomic
def resend_transcode(video_id: int, *, queued_before: datetime) -> bool:
    """Send again a video still UPLOADED since a send before `queued_before` (that send may
    have been lost after commit; a duplicate is harmless). False if it moved on meanwhile."""
    resent = Video.objects.filter(
        pk=video_id, status=Video.Status.UPLOADED, queued_at__lt=queued_before,
    ).update(queued_at=timezone.now())
    if resent:
        send_on_commit(TRANSCODE_TASK, video_id)
    return bool(resent)


@transaction.atomic
def mark_processing(
    video_id: int, *, worker_id: str = "", lease_seconds: int = DEFAULT_LEASE_SECONDS
) -> bool:
    """UPLOADED → PROCESSING under a lease; True if the video is (now) PROCESSING."""
    video = get_video_for_update(video_id)
    if not video:
        return False
    if video.status == Video.Status.PROCESSING:
        # The lease holder asking again (a retry of its own) may go on; a duplicate delivery
        # to another worker may not.
        if video.leased_by != worker_id:
            logger.info("video %s is leased by %s; %s leaves it", video_id, video.leased_by,
                        worker_id)
        return video.leased_by == worker_id
    if video.status != Video.Status.UPLOADED:
        logger.warning("Cannot mark video %s as PROCESSING: status=%s", video_id, video.status)
        return False
    now = timezone.now()
    video.status = Video.Status.PROCESSING
    video.processing_started_at = now
    video.leased_by = worker_id
    video.leased_until = now + timedelta(seconds=lease_seconds)
    video.attempts += 1
    save_transition(video, update_fields=[
        "status", "processing_started_at", "leased_by", "leased_until", "attempts",
    ])
    return True


def renew_video_lease(video_id: int, *, worker_id: str, lease_seconds: int) -> bool:
    """Extend the lease the worker holds; False if it lost it (the reaper re-queued the video).

    Not a transition: nothing a poll shows changes, so no version bump and no Redis write.
    """
    until = timezone.now() + timedelta(seconds=lease_seconds)
    return bool(Video.objects.filter(
        pk=video_id, status=Video.Status.PROCESSING, leased_by=worker_id,
    ).update(leased_until=until))


def expire_video_lease(video_id: int, *, worker_id: str) -> bool:
    """Give up the lease now (the worker failed unexpectedly): the reaper re-queues it next."""
    return bool(Video.objects.filter(
        pk=video_id, status=Video.Status.PROCESSING, leased_by=worker_id,
    ).update(leased_until=timezone.now()))


def _lease_lost(video: Video, worker_id: str | None) -> bool:
    return worker_id is not None and (
        video.status != Video.Status.PROCESSING or video.leased_by != worker_id
    )


@transaction.atomic
def complete_video(
    video_id: int, hls_path: str, duration: int | None = None, *, worker_id: str | None = None
) -> tuple[bool, Outcome]:
    """→ READY with its HLS path and duration; the lease is released.

    With `worker_id`, only the lease holder may complete it ("lease_lost" otherwise).
    """
    video = get_video_for_update(video_id)
    if not video:
        return False, Outcome.NOT_FOUND
    if video.status == Video.Status.READY and bool(video.hls_path):
        return True, Outcome.IDEMPOTENT
    if video.status == Video.Status.CANCELLED:
        return False, Outcome.INVALID_STATE  # a video ends in one terminal state
    if _lease_lost(video, worker_id):
        return False, Outcome.LEASE_LOST
    video.hls_path = str(hls_path)
    if duration is not None and duration >= 0:
        video.duration = int(duration)
    video.status = Video.Status.READY
    video.error_reason = ""
    _release_lease(video)
    _keep_log(video)
    save_transition(video, update_fields=[
        "hls_path", "duration", "status", "error_reason", "leased_by", "leased_until", "log",
    ])
    return True, Outcome.OK


@transaction.atomic
def fail_video(video_id: int, reason: str, *, worker_id: str | None = None) -> tuple[bool, Outcome]:
    """→ FAILED with its reason; the lease is released.

    With `worker_id`, only the lease holder may fail it ("lease_lost" otherwise).
    """
    video = get_video_for_update(video_id)
    if not video:
        return False, Outcome.NOT_FOUND
    if video.status == Video.Status.FAILED:
        return True, Outcome.IDEMPOTENT
    if video.status == Video.Status.CANCELLED:
        return False, Outcome.INVALID_STATE  # a video ends in one terminal state
    if _lease_lost(video, worker_id):
        return False, Outcome.LEASE_LOST
    video.status = Video.Status.FAILED
    video.error_reason = str(reason)[:ERROR_REASON_MAX_CHARS]
    _release_lease(video)
    job_control.log_line(KIND, str(video.pk), f"failed: {video.error_reason}")
    _keep_log(video)
    save_transition(video, update_fields=[
        "status", "error_reason", "leased_by", "leased_until", "log"])
    return True, Outcome.OK


@transaction.atomic
def requeue_video(video_id: int) -> tuple[bool, Outcome]:
    """FAILED or PROCESSING (a dead worker's) → UPLOADED, with a newer version so Redis follows."""
    video = get_video_for_update(video_id)
    if not video:
        return False, Outcome.NOT_FOUND
    if video.status == Video.Status.UPLOADED:
        return True, Outcome.IDEMPOTENT
    if video.status == Video.Status.READY:
        return False, Outcome.INVALID_STATE
    video.status = Video.Status.UPLOADED
    video.error_reason = ""
    _release_lease(video)
    save_transition(video, update_fields=["status", "error_reason", "leased_by", "leased_until"])
    return True, Outcome.OK


@transaction.atomic
def requeue_expired_video(video_id: int, *, max_attempts: int, now: datetime) -> Outcome:
    """The reaper's transition for a video whose lease ran out before `now`.

    "requeued": → UPLOADED with a newer version, sent to a worker after commit;
    "failed": it used up `max_attempts`, → FAILED with the reason; "skipped": not expired
    (any more), e.g. its worker renewed the lease or finished meanwhile.
    """
    video = get_video_for_update(video_id)
    if (not video or video.status != Video.Status.PROCESSING or video.leased_until is None
            or video.leased_until >= now):
        return Outcome.SKIPPED
    starts = video.attempts - video.attempts_before_run  # of this run: a retry starts afresh
    if starts >= max_attempts:
        video.status = Video.Status.FAILED
        video.error_reason = (
            f"Transcoding did not finish in {starts} attempts "
            "(the worker stopped answering)."
        )
        _release_lease(video)
        _keep_log(video)
        save_transition(video, update_fields=[
            "status", "error_reason", "leased_by", "leased_until", "log"])
        return Outcome.FAILED
    logger.warning("video %s: lease of %s expired at %s; re-queued", video_id,
                   video.leased_by, video.leased_until)
    video.status = Video.Status.UPLOADED
    _release_lease(video)
    save_transition(video, update_fields=["status", "leased_by", "leased_until"])
    queue_transcode(video.pk)
    return Outcome.REQUEUED


@transaction.atomic
def cancel_video(video_id: int, *, tenant_id: int) -> Outcome:
    """UPLOADED / PROCESSING → CANCELLED, for the video's tenant: "ok"; "idempotent" (already
    CANCELLED); "terminal" (READY or FAILED: too late); "not_found" (missing or another
    tenant's). The row lock decides a race with the worker's own end: one terminal state.
    After commit the cancel flag tells the worker (jobbox.control) to stop and remove what it
    wrote; the output of the run's folder is removed here too, for a worker that died."""
    video = Video.objects.select_for_update().filter(pk=video_id, tenant_id=tenant_id).first()
    if video is None:
        return Outcome.NOT_FOUND
    if video.status == Video.Status.CANCELLED:
        return Outcome.IDEMPOTENT
    if video.status in (Video.Status.READY, Video.Status.FAILED):
        return Outcome.TERMINAL
    started = video.status == Video.Status.PROCESSING
    video.status = Video.Status.CANCELLED
    video.error_reason = ""
    _release_lease(video)
    job_control.log_line(KIND, str(video.pk), f"attempt {video.attempt}: cancelled on request")
    _keep_log(video)
    save_transition(video, update_fields=[
        "status", "error_reason", "leased_by", "leased_until", "log"])
    request_cancel_on_commit(KIND, str(video.pk))
    if started:
        prefix = storage.hls_prefix(video_id=video.pk, attempt=video.attempts)
        transaction.on_commit(lambda: storage.delete_folder(prefix))
    return Outcome.OK


@transaction.atomic
def retry_video(video_id: int, *, tenant_id: int) -> Outcome:
    """FAILED / CANCELLED → UPLOADED as the next attempt, queued after commit with the same
    limits and lease as a first run: "ok"; "invalid_state" (not FAILED or CANCELLED);
    "retry_limit" (MAX_ATTEMPT runs already); "not_found". The earlier run's reason is kept
    in `previous_attempts`."""
    video = Video.objects.select_for_update().filter(pk=video_id, tenant_id=tenant_id).first()
    if video is None:
        return Outcome.NOT_FOUND
    if video.status not in (Video.Status.FAILED, Video.Status.CANCELLED):
        return Outcome.INVALID_STATE
    if video.attempt >= job_control.MAX_ATTEMPT:
        return Outcome.RETRY_LIMIT
    video.previous_attempts = [*video.previous_attempts, job_control.previous_attempt(
        video.attempt, video.status, video.error_reason)]
    video.attempt += 1
    video.attempts_before_run = video.attempts
    video.status = Video.Status.UPLOADED
    video.error_reason = ""
    video.hls_path = ""
    _release_lease(video)
    save_transition(video, update_fields=[
        "previous_attempts", "attempt", "attempts_before_run", "status", "error_reason",
        "hls_path", "leased_by", "leased_until"])
    job_control.start_retry_on_commit(KIND, str(video.pk), earlier_log=list(video.log),
                                      attempt=video.attempt)
    queue_transcode(video.pk)
    return Outcome.OK


def keep_log_after_end(video_id: int) -> None:
    """The lines a worker wrote after its job ended (a cancelled run's "stopped") onto the
    row too. Not a transition: the log is not part of what a poll shows."""
    stored = Video.objects.filter(pk=video_id).values_list("log", flat=True).first()
    if stored is not None:
        Video.objects.filter(pk=video_id).update(
            log=job_control.final_log(KIND, str(video_id), stored=list(stored)))


def _keep_log(video: Video) -> None:
    """The run's log from Redis onto the row, saved with the transition that ends it."""
    video.log = job_control.final_log(KIND, str(video.pk), stored=list(video.log))


def _release_lease(video: Video) -> None:
    video.leased_by = ""
    video.leased_until = None


def report_video_progress(
    video_id: int,
    *,
    percent: float,
    step_index: int | None = None,
    step_total: int | None = None,
    step_name: str | None = None,
    step_percent: float | None = None,
) -> bool:
    """Progress to Redis only (never the database); False if it was not recorded."""
    try:
        return report_progress(
            "video", str(video_id), percent=percent, step_index=step_index,
            step_total=step_total, step_name=step_name, step_percent=step_percent,
        )
    except RedisUnavailable:
        logger.info("video %s: progress not recorded, Redis unavailable", video_id)
        return False
