"""Drive jobs of a tenant through the real service functions so a person can watch them move.

Each video goes UPLOADED → PROCESSING → (named steps with progress) → READY, and each AI job
(`--ai N`, through the AI job repository's `save`) PENDING → PROCESSING → (the grade report's
named steps) → DONE with a grade report result; the first `--fail` jobs in all (videos first)
end FAILED instead. Each runs over `--seconds`; one JSON line per job is printed as it is
created, and (on stderr, with the drive's start) one as it ends. The simulated jobs hold
their leases while they are driven (renewed as a worker renews its own), so the reapers never
hand one to a real worker.

Titles carry on from the tenant's earlier simulated jobs, so each run's jobs are told apart. A
simulated video has no rendition to play: it ends READY without an HLS path (the page offers
Play only for a video that has one). `--background` returns at once: the jobs are created and
started here, and a detached process drives them (its output in `.run/simulate_jobs.log`).
"""

import argparse
import itertools
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from academy.ai import services as ai
from academy.ai.job_types.grade_report import (
    GradeReport,
    StudentRow,
    rank_students,
    subject_statistics,
)
from academy.ai.models import AIJobModel
from academy.tenants.models import Membership, Tenant
from academy.videos import services as videos
from academy.videos.models import Video
from academy.videos.processing import LEASE_RENEW_FRACTION
from jobbox import CancelRequested

VIDEO_STEPS = ["probe", "transcode 360p", "transcode 720p", "package"]
AI_STEPS = list(GradeReport.steps)
SIMULATED_SUBJECTS = ["Korean", "Math", "English"]
SIMULATED_STUDENTS = 12
# Progress is reported this often per job: the job box polls once a second.
TICK_SECONDS = 0.5
VIDEO_TITLE = "Simulated lecture"
SHEET_NAME = "simulated-scores"
BACKGROUND_LOG_NAME = "simulate_jobs.log"
# The lease holder the simulated jobs run under.
WORKER_ID = "simulate_jobs"


@dataclass
class SimulatedJob:
    kind: str
    job_id: int | str
    fails: bool
    done: bool = False
    # When its lease was last renewed (time.monotonic(); 0: not yet by this process).
    renewed_at: float = 0.0


class Command(BaseCommand):
    help = "Drive simulated jobs through the real transitions and progress reports."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--videos", type=int, default=3, help="how many videos")
        parser.add_argument("--seconds", type=float, default=30.0, help="how long each job runs")
        parser.add_argument("--ai", type=int, default=0, help="how many AI (grade report) jobs")
        parser.add_argument("--fail", type=int, default=0,
                            help="how many jobs in all end FAILED (videos first)")
        parser.add_argument("--background", action="store_true",
                            help="return at once; a detached process drives the jobs")
        # Internal: the detached process of --background drives the jobs it is given.
        parser.add_argument("--drive", default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        if min(options["videos"], options["ai"], options["fail"]) < 0 or options["seconds"] <= 0:
            raise CommandError("--videos, --ai and --fail must be >= 0 and --seconds > 0")
        if options["drive"]:
            self._drive([SimulatedJob(**job) for job in json.loads(options["drive"])],
                        options["seconds"])
            return
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {options['tenant']!r} (run bootstrap_demo first)")
        member = Membership.objects.filter(tenant=tenant).order_by("pk").first()
        user_id = member.user_id if member else None
        first_video = Video.objects.filter(tenant=tenant, title__startswith=VIDEO_TITLE).count()
        first_sheet = AIJobModel.objects.filter(tenant=tenant, payload__simulated=True).count()
        # The first --fail jobs in all fail, counted across both kinds.
        failing = itertools.chain([True] * options["fail"], itertools.repeat(False))
        jobs = [
            self._create_video(tenant, user_id, first_video + n, next(failing))
            for n in range(options["videos"])
        ]
        jobs += [
            self._create_ai_job(tenant, user_id, first_sheet + n, next(failing))
            for n in range(options["ai"])
        ]
        for job in jobs:
            if job.kind == "video":
                videos.mark_processing(job.job_id, worker_id=WORKER_ID,
                                       lease_seconds=settings.VIDEO_LEASE_SECONDS)
            else:
                ai.ai_job_start(job_id=str(job.job_id), worker_id=WORKER_ID)
            job.renewed_at = time.monotonic()
        if options["background"]:
            self._drive_in_background(jobs, options)
        else:
            self._drive(jobs, options["seconds"])

    def _drive_in_background(self, jobs: list[SimulatedJob], options: dict[str, Any]) -> None:
        """A detached `simulate_jobs --drive` process moves the jobs on; this one returns."""
        log_path = Path(settings.RUN_DIR) / BACKGROUND_LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "simulate_jobs",
                   "--tenant", options["tenant"], "--seconds", str(options["seconds"]),
                   "--drive", json.dumps([asdict(job) for job in jobs])]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.stderr.write(f"Driving {len(jobs)} jobs over {options['seconds']:g} s in the "
                          f"background (pid {process.pid}); its output: {log_path}")

    def _create_video(
        self, tenant: Tenant, user_id: int | None, n: int, fails: bool
    ) -> SimulatedJob:
        video = videos.create_video(
            tenant_id=tenant.pk, uploaded_by_id=user_id, title=f"{VIDEO_TITLE} {n + 1}"
        )
        self.stdout.write(json.dumps({"kind": "video", "id": video.pk, "tenant": tenant.slug}))
        self.stdout.flush()
        return SimulatedJob("video", video.pk, fails)

    def _create_ai_job(
        self, tenant: Tenant, user_id: int | None, n: int, fails: bool
    ) -> SimulatedJob:
        job = ai.ai_job_create(
            tenant_id=tenant.pk, created_by_id=user_id, job_type=GradeReport.name,
            payload={"simulated": True, "file_name": f"{SHEET_NAME}-{n + 1}.xlsx"},
            queue=False,  # driven here, not by a worker
        )
        self.stdout.write(json.dumps({"kind": "ai_job", "id": job.job_id, "tenant": tenant.slug}))
        self.stdout.flush()
        return SimulatedJob("ai_job", job.job_id, fails)

    def _drive(self, jobs: list[SimulatedJob], seconds: float) -> None:
        # The drive's own lines go to stderr: stdout is one line per created job, for programs.
        self.stderr.write(json.dumps({"driving": len(jobs), "seconds": seconds}))
        self.stderr.flush()
        started = time.monotonic()
        while not all(job.done for job in jobs):
            fraction = min(1.0, (time.monotonic() - started) / seconds)
            for job in jobs:
                if not job.done:
                    self._renew_lease_if_due(job)
                    try:
                        self._advance(job, fraction)
                    except CancelRequested:
                        job.done = True  # someone pressed Cancel: it ended CANCELLED
                    if job.done:
                        self._say_ended(job)
            if fraction < 1.0:
                time.sleep(TICK_SECONDS)

    def _renew_lease_if_due(self, job: SimulatedJob) -> None:
        """As a real worker does: renewed once a third of the lease has passed, so the
        reapers take the job for a live one."""
        lease_seconds = (settings.VIDEO_LEASE_SECONDS if job.kind == "video"
                         else settings.AI_LEASE_SECONDS)
        if time.monotonic() - job.renewed_at < lease_seconds * LEASE_RENEW_FRACTION:
            return
        if job.kind == "video":
            videos.renew_video_lease(int(job.job_id), worker_id=WORKER_ID,
                                     lease_seconds=lease_seconds)
        else:
            ai.ai_job_renew_lease(job_id=str(job.job_id), worker_id=WORKER_ID,
                                  lease_seconds=lease_seconds)
        job.renewed_at = time.monotonic()

    def _say_ended(self, job: SimulatedJob) -> None:
        model = Video if job.kind == "video" else AIJobModel
        key = "pk" if job.kind == "video" else "job_id"
        status = model.objects.filter(**{key: job.job_id}).values_list("status", flat=True).first()
        self.stderr.write(json.dumps({"kind": job.kind, "id": job.job_id, "status": status}))
        self.stderr.flush()

    def _advance(self, job: SimulatedJob, fraction: float) -> None:
        if job.kind == "ai_job":
            self._advance_ai_job(job, fraction)
            return
        steps = len(VIDEO_STEPS)
        if fraction >= 1.0:
            if job.fails:
                videos.fail_video(job.job_id, "simulated failure", worker_id=WORKER_ID)
            else:
                # The last step at 100 % too, as a real transcode ends; no HLS path: nothing
                # was transcoded, so there is nothing to play.
                videos.report_video_progress(job.job_id, percent=100, step_index=steps,
                                             step_total=steps, step_name=VIDEO_STEPS[-1],
                                             step_percent=100)
                videos.complete_video(job.job_id, "", duration=600, worker_id=WORKER_ID)
            job.done = True
            return
        index = min(steps - 1, int(fraction * steps))
        videos.report_video_progress(
            job.job_id, percent=fraction * 100, step_index=index + 1, step_total=steps,
            step_name=VIDEO_STEPS[index], step_percent=(fraction * steps - index) * 100,
        )

    def _advance_ai_job(self, job: SimulatedJob, fraction: float) -> None:
        job_id = str(job.job_id)
        if fraction >= 1.0:
            if job.fails:
                ai.ai_job_fail(job_id=job_id, error_message="simulated failure",
                               worker_id=WORKER_ID)
            else:
                ai.ai_job_complete(job_id=job_id, result=simulated_grade_report(job_id),
                                   worker_id=WORKER_ID)
            job.done = True
            return
        steps = len(AI_STEPS)
        index = min(steps - 1, int(fraction * steps))
        ai.ai_job_report_progress(
            job_id=job_id, percent=fraction * 100, step_index=index + 1, step_total=steps,
            step_name=AI_STEPS[index], step_percent=(fraction * steps - index) * 100,
        )


def simulated_grade_report(seed: str) -> dict[str, Any]:
    """A grade report's result computed by the real functions from made-up scores."""
    salt = sum(map(ord, seed))
    students = [
        StudentRow(row=n + 2, student=f"Student {n + 1}",
                   scores={s: (salt + n * 37 + i * 11) % 61 + 40
                           for i, s in enumerate(SIMULATED_SUBJECTS)})
        for n in range(SIMULATED_STUDENTS)
    ]
    return {
        "sheet": "Simulated",
        "subjects": SIMULATED_SUBJECTS,
        "summary": {"rows": len(students), "valid_rows": len(students), "bad_rows": 0},
        "students": rank_students(SIMULATED_SUBJECTS, students),
        "subject_stats": [subject_statistics(s, students) for s in SIMULATED_SUBJECTS],
        "bad_rows": [],
    }
