"""The transcoding job one worker runs for one video: probe, each rendition, packaging.

docs/explanation/architecture.md, "Data flow": the worker's transitions go through the
services (database, then Redis after commit) and its progress only to Redis, with named
steps. It holds a lease on the video, renewed while ffmpeg reports progress; if the lease is
lost (the reaper gave the video to another worker) it stops at once and leaves the video
alone. If someone cancels the video, its next progress report raises `CancelRequested`
(jobbox.control): ffmpeg is killed as its reader unwinds, the scratch folder goes with its
`with`, and whatever this run already published is deleted. """

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from academy import job_control
from academy.videos import services, storage, transcoding
from academy.videos.media_limits import MediaLimits
from academy.videos.models import Video
from jobbox import CancelRequested

logger = logging.getLogger(__name__)

# Shares of the overall percent: probing is quick, packaging copies files to storage, the
# renditions (split evenly) are the real work.
PROBE_SHARE_PERCENT = 5.0
PACKAGE_SHARE_PERCENT = 10.0
# The lease is renewed once this fraction of it has passed: two renewals can fail (a slow
# database) before it runs out.
LEASE_RENEW_FRACTION = 1 / 3


class LeaseLost(Exception):
    """The worker no longer holds the video's lease; it must stop without a transition."""


class Lease:
    """The worker's hold on a video, renewed when due."""

    def __init__(self, *, video_id: int, worker_id: str, lease_seconds: int) -> None:
        self.video_id, self.worker_id, self.lease_seconds = video_id, worker_id, lease_seconds
        self.renewed_at = time.monotonic()

    def renew_if_due(self) -> None:
        if time.monotonic() - self.renewed_at < self.lease_seconds * LEASE_RENEW_FRACTION:
            return
        if not services.renew_video_lease(self.video_id, worker_id=self.worker_id,
                                          lease_seconds=self.lease_seconds):
            raise LeaseLost(self.video_id)
        self.renewed_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    share_percent: float


class StepReporter:
    """Reports each step's progress as an overall percent, with the step's name and place."""

    def __init__(self, *, video_id: int, steps: list[Step], lease: Lease) -> None:
        self.video_id, self.steps, self.lease = video_id, steps, lease

    def step(self, index: int) -> Callable[[float], None]:
        done_before = sum(step.share_percent for step in self.steps[:index])
        step = self.steps[index]

        def report(fraction: float) -> None:
            fraction = max(0.0, min(1.0, fraction))
            services.report_video_progress(
                self.video_id,
                percent=done_before + step.share_percent * fraction,
                step_index=index + 1,
                step_total=len(self.steps),
                step_name=step.name,
                step_percent=100 * fraction,
            )
            self.lease.renew_if_due()

        job_control.log_line(services.KIND, str(self.video_id),
                             f"step {index + 1}/{len(self.steps)}: {step.name}")
        report(0.0)
        return report


def transcode(*, video_id: int, worker_id: str) -> str:
    """Run the whole job; the outcome: "ready", "failed", "skipped" (another worker holds it,
    or it already ended: a duplicate delivery), "lease_lost", or a service's refusal."""
    lease_seconds = settings.VIDEO_LEASE_SECONDS
    if not services.mark_processing(video_id, worker_id=worker_id, lease_seconds=lease_seconds):
        return "skipped"
    video = Video.objects.only("source", "attempts", "attempt").get(pk=video_id)
    job_control.log_line(services.KIND, str(video_id),
                         f"attempt {video.attempt}: started by {worker_id}")
    lease = Lease(video_id=video_id, worker_id=worker_id, lease_seconds=lease_seconds)
    prefix = storage.hls_prefix(video_id=video_id, attempt=video.attempts)
    try:
        with tempfile.TemporaryDirectory(prefix=f"jobbox-video-{video_id}-") as scratch:
            hls_path, duration = _run(video, Path(scratch), lease)
    except CancelRequested:
        removed = storage.delete_folder(prefix)
        logger.info("video %s: cancelled; ffmpeg stopped, %s published files removed",
                    video_id, removed)
        job_control.log_line(services.KIND, str(video_id),
                             f"stopped: {removed} published files removed")
        services.keep_log_after_end(video_id)
        return "cancelled"
    except LeaseLost:
        logger.warning("video %s: %s lost its lease; stopped", video_id, worker_id)
        return "lease_lost"
    except (transcoding.NotAVideo, transcoding.TranscodeFailed) as exc:
        ok, outcome = services.fail_video(video_id, str(exc), worker_id=worker_id)
        return "failed" if ok else outcome
    except FileNotFoundError:
        logger.exception("video %s: source %r missing", video_id, video.source.name)
        ok, outcome = services.fail_video(video_id, "The uploaded file is missing.",
                                          worker_id=worker_id)
        return "failed" if ok else outcome
    ok, outcome = services.complete_video(video_id, hls_path, duration, worker_id=worker_id)
    if not ok:
        # Cancelled (or given to another worker) as it finished: nothing points at this
        # run's folder, and nothing ever will.
        storage.delete_folder(prefix)
    return "ready" if ok else outcome


def _run(video: Video, scratch: Path, lease: Lease) -> tuple[str, int]:
    renditions = transcoding.parse_ladder(settings.VIDEO_HLS_LADDER)
    share = (100.0 - PROBE_SHARE_PERCENT - PACKAGE_SHARE_PERCENT) / len(renditions)
    steps = [Step("probe", PROBE_SHARE_PERCENT),
             *(Step(f"transcode {r.name}", share) for r in renditions),
             Step("package", PACKAGE_SHARE_PERCENT)]
    reporter = StepReporter(video_id=video.pk, steps=steps, lease=lease)
    report = reporter.step(0)
    source = storage.fetch(video.source.name, scratch / "source")
    limits = MediaLimits.from_settings()
    # Again, under the same budgets: the worker trusts no earlier look (the limits may have
    # changed since the upload, and the stored file is what gets transcoded).
    probed = transcoding.probe(source, limits)
    report(1.0)

    out_dir = scratch / "hls"
    out_dir.mkdir()
    written = []
    for index, rendition in enumerate(renditions, start=1):
        playlist = transcoding.transcode_rendition(
            source, probed, rendition, out_dir,
            on_progress=reporter.step(index),
            preset=settings.VIDEO_X264_PRESET,
            threads=settings.VIDEO_FFMPEG_THREADS,
            readrate=settings.VIDEO_FFMPEG_READRATE,
            timeout_seconds=settings.VIDEO_FFMPEG_TIMEOUT_SECONDS,
            limits=limits,
            on_summary=lambda line: job_control.log_line(services.KIND, str(video.pk), line),
        )
        written.append((rendition, playlist))
        job_control.log_line(services.KIND, str(video.pk), f"transcode {rendition.name}: "
                             f"{len(transcoding.segment_names(playlist))} segments")

    report = reporter.step(len(steps) - 1)
    master = out_dir / "master.m3u8"
    master.write_text(transcoding.master_playlist(written))
    files = [out_dir / name for _, playlist in written
             for name in transcoding.segment_names(playlist)]
    files += [playlist for _, playlist in written]
    prefix = storage.hls_prefix(video_id=video.pk, attempt=video.attempts)
    job_control.log_line(services.KIND, str(video.pk),
                         f"{len(written)} renditions, {len(files) + 1} files to publish")
    # Segments, then rendition playlists, then the master last: whatever a reader finds
    # through the master is complete.
    for number, path in enumerate([*files, master], start=1):
        storage.publish([path], prefix=prefix)
        report(number / (len(files) + 1))
    return f"{prefix}/master.m3u8", round(probed.duration_seconds)
