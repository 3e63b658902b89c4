"""Drive jobs of a tenant through the real service functions so a person can watch them move.

Each job goes UPLOADED → PROCESSING → (named steps with progress) → READY, or FAILED for the
ones `--fail` picks, over `--seconds`. One JSON line per job is printed as it is created.
"""

import json
import time
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from academy.tenants.models import Membership, Tenant
from academy.videos import services as videos

VIDEO_STEPS = ["probe", "transcode 360p", "transcode 720p", "package"]
# Progress is reported this often per job: the job box polls once a second.
TICK_SECONDS = 0.5


@dataclass
class SimulatedJob:
    kind: str
    job_id: int
    fails: bool
    done: bool = False


class Command(BaseCommand):
    help = "Drive simulated jobs through the real transitions and progress reports."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--videos", type=int, default=3, help="how many videos")
        parser.add_argument("--seconds", type=float, default=30.0, help="how long each job runs")
        parser.add_argument("--fail", type=int, default=0, help="how many of them end FAILED")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["videos"] < 0 or options["seconds"] <= 0 or options["fail"] < 0:
            raise CommandError("--videos and --fail must be >= 0 and --seconds > 0")
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {options['tenant']!r} (run bootstrap_demo first)")
        member = Membership.objects.filter(tenant=tenant).order_by("pk").first()
        jobs = [
            self._create_video(tenant, member.user_id if member else None, n, n < options["fail"])
            for n in range(options["videos"])
        ]
        for job in jobs:
            videos.mark_processing(job.job_id, worker_id="simulate_jobs")
        self._drive(jobs, options["seconds"])

    def _create_video(
        self, tenant: Tenant, user_id: int | None, n: int, fails: bool
    ) -> SimulatedJob:
        video = videos.create_video(
            tenant_id=tenant.pk, uploaded_by_id=user_id, title=f"Simulated lecture {n + 1}"
        )
        self.stdout.write(json.dumps({"kind": "video", "id": video.pk, "tenant": tenant.slug}))
        self.stdout.flush()
        return SimulatedJob("video", video.pk, fails)

    def _drive(self, jobs: list[SimulatedJob], seconds: float) -> None:
        started = time.monotonic()
        while not all(job.done for job in jobs):
            fraction = min(1.0, (time.monotonic() - started) / seconds)
            for job in jobs:
                if not job.done:
                    self._advance(job, fraction)
            if fraction < 1.0:
                time.sleep(TICK_SECONDS)

    def _advance(self, job: SimulatedJob, fraction: float) -> None:
        if fraction >= 1.0:
            if job.fails:
                videos.fail_video(job.job_id, "simulated failure")
            else:
                videos.complete_video(job.job_id, f"hls/{job.job_id}/master.m3u8", duration=600)
            job.done = True
            return
        steps = len(VIDEO_STEPS)
        index = min(steps - 1, int(fraction * steps))
        videos.report_video_progress(
            job.job_id, percent=fraction * 100, step_index=index + 1, step_total=steps,
            step_name=VIDEO_STEPS[index], step_percent=(fraction * steps - index) * 100,
        )
