"""The soak's jobs: academies and people seeded, simulated videos created, moved through
their states and sometimes deleted (as a worker and an admin would, through the service's
functions), real score sheets and real small videos uploaded through the API for the Celery
workers to grade and transcode (with ffmpeg); then every job driven to its end, and the
database's truth read for the checker."""

import contextlib
import io
import random
import threading
import time
from typing import Any

import openpyxl
import requests

from bench.soak.clients import REQUEST_TIMEOUT_SECONDS, Person
from bench.soak.recorder import Recorder

DRIVER_WORKER_ID = "soak-driver"
# Share of steps that create a job, and of finished videos that get deleted.
CREATE_SHARE = 0.3
DELETE_SHARE = 0.15
# Most simulated videos in flight at once: the rest of the steps move them on.
MAX_OPEN_VIDEOS = 12
# One in this many simulated videos fails instead of finishing.
FAIL_ONE_IN = 5
# The driver acts this often: creates, moves on or deletes one simulated job.
STEP_PAUSE_SECONDS = 0.3
# A real score sheet is uploaded this often (a worker grades it in a second or two), and a
# real video this often (a 2-second clip to one tiny rendition: a few seconds of a worker's
# CPU), so the workers do real work beside the simulated jobs without owning the machine.
SHEET_PAUSE_SECONDS = 4.0
TRANSCODE_PAUSE_SECONDS = 15.0
# Simulated videos are the driver's to move; real uploads are the workers'.
SIMULATED_TITLE = "soak"
TRANSCODE_TITLE = "soak transcode"


def seed_people(academies: tuple[str, ...], per_academy: int) -> list[Person]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from academy.tenants.models import Membership, Tenant

    people = []
    for slug in academies:
        tenant = Tenant.objects.create(slug=slug, name=slug.title())
        for n in range(per_academy):
            user = get_user_model().objects.create_user(username=f"{slug}-{n}",
                                                        password=f"pw-{slug}-{n}")
            Membership.objects.create(user=user, tenant=tenant)
            people.append(Person(academy=slug, person=user.username,
                                 token=Token.objects.create(user=user).key))
    return people


def sheet_bytes() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Scores"
    sheet.append(["Student", "Korean", "Math", "English"])
    for n in range(random.randint(3, 12)):
        sheet.append([f"S{n}", random.randint(0, 100), random.randint(0, 100),
                      random.randint(0, 100)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


class Driver(threading.Thread):
    def __init__(self, people: list[Person], bases: list[str], recorder: Recorder,
                 stop: threading.Event, *, clip: bytes) -> None:
        """`clip`: the small video every real upload sends."""
        super().__init__(name="driver", daemon=True)
        self.people, self.bases, self.recorder, self.stop = people, bases, recorder, stop
        self.clip = clip
        self.deleted_at: dict[tuple[str, str], float] = {}
        self.uploaded: dict[str, int] = {"video": 0, "ai_job": 0}  # real jobs made, by kind
        self.next_sheet = self.next_transcode = 0.0

    def run(self) -> None:
        from django.db import DatabaseError, InterfaceError, close_old_connections

        while not self.stop.is_set():
            try:
                self.upload_when_due()
                self.step()
            except (DatabaseError, InterfaceError):
                close_old_connections()  # the database is restarting: try again later
            self.stop.wait(STEP_PAUSE_SECONDS)
        close_old_connections()

    def upload_when_due(self) -> None:
        now = time.monotonic()
        if now >= self.next_sheet:
            self.next_sheet = now + SHEET_PAUSE_SECONDS
            self.upload(random.choice(self.people), "ai_job", "/api/ai/jobs/",
                        files={"file": ("scores.xlsx", sheet_bytes())},
                        data={"job_type": "excel.grade_report"})
        if now >= self.next_transcode:
            self.next_transcode = now + TRANSCODE_PAUSE_SECONDS
            self.upload(random.choice(self.people), "video", "/api/videos/",
                        files={"file": ("lecture.mp4", self.clip)},
                        data={"title": TRANSCODE_TITLE})

    def person_of(self, video: Any) -> Person:
        return next(p for p in self.people if p.person == video.uploaded_by.username)

    def step(self) -> None:
        from academy.videos import services
        from academy.videos.models import Video

        open_videos = list(Video.objects.filter(title=SIMULATED_TITLE)
                           .exclude(status__in=["READY", "FAILED"])
                           .select_related("uploaded_by")[:50])
        if random.random() < CREATE_SHARE and len(open_videos) < MAX_OPEN_VIDEOS:
            person = random.choice(self.people)
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.select_related("membership").get(
                username=person.person)
            video = services.create_video(tenant_id=user.membership.tenant_id,
                                          uploaded_by_id=user.pk, title=SIMULATED_TITLE)
            person.jobs.append(("video", str(video.pk)))
            return
        if random.random() < DELETE_SHARE:
            finished = Video.objects.filter(status__in=["READY", "FAILED"]).order_by("?").first()
            if finished is not None:
                key = ("video", str(finished.pk))
                finished.delete()
                self.deleted_at[key] = time.time()
                return
        if open_videos:
            self.advance(random.choice(open_videos).pk)

    def advance(self, video_id: int) -> None:
        from academy.videos import services
        from academy.videos.models import Video

        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            return
        if video.status == "UPLOADED":
            services.mark_processing(video_id, worker_id=DRIVER_WORKER_ID)
        elif video.status == "PROCESSING":
            roll = random.random()
            if roll < 0.5:
                from jobbox.client import RedisUnavailable

                with contextlib.suppress(RedisUnavailable):  # progress is best effort
                    services.report_video_progress(video_id, percent=random.uniform(1, 99),
                                                   step_index=1, step_total=2,
                                                   step_name="transcode 360p")
            elif random.randrange(FAIL_ONE_IN) == 0:
                services.fail_video(video_id, "soak: a broken file")
            else:
                services.complete_video(video_id, f"hls/{video_id}/master.m3u8", duration=10)

    def upload(self, person: Person, kind: str, path: str, *, files: dict[str, Any],
               data: dict[str, str]) -> None:
        """A real job made through the API, as the person's browser would; the workers take
        it from there."""
        sent = time.time()
        about = {"client": "driver", "academy": person.academy, "person": person.person,
                 "op": "create", "sent": sent}
        try:
            answer = requests.post(
                random.choice(self.bases) + path,
                headers={"Authorization": f"Token {person.token}"}, files=files, data=data,
                timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            self.recorder.record(**about, status=None, error=type(exc).__name__)
            return
        self.recorder.record(**about, status=answer.status_code,
                             retry_after=answer.headers.get("Retry-After"))
        if answer.status_code in (200, 201, 202):
            body = answer.json()
            person.jobs.append((kind, str(body.get("job_id") or body.get("id"))))
            self.uploaded[kind] += 1

    def finish_all(self, *, timeout_seconds: float) -> None:
        """Every simulated video driven to its end; the score sheets and real videos left to
        the workers (a killed worker's job comes back through its lease and the reaper)."""
        from academy.ai.models import AIJobModel
        from academy.videos.models import Video
        from jobbox import registry

        deadline = time.monotonic() + timeout_seconds
        ai_terminal = sorted(registry.get("ai_job").terminal_statuses)
        while time.monotonic() < deadline:
            open_videos = Video.objects.exclude(status__in=["READY", "FAILED"])
            for video_id in open_videos.filter(title=SIMULATED_TITLE).values_list("pk",
                                                                                 flat=True):
                self.advance(video_id)
            if not open_videos.exists() and not AIJobModel.objects.exclude(
                    status__in=ai_terminal).exists():
                return
            time.sleep(0.5)

    def real_work(self) -> dict[str, dict[str, int]]:
        """The real jobs: transcodes and score sheets made, and how those not deleted ended."""
        from django.db.models import Count

        from academy.ai.models import AIJobModel
        from academy.videos.models import Video

        def by_status(rows: Any) -> dict[str, int]:
            return {str(row["status"]): row["n"]
                    for row in rows.order_by().values("status").annotate(n=Count("pk"))}

        return {"transcodes": {"made": self.uploaded["video"],
                               **by_status(Video.objects.filter(title=TRANSCODE_TITLE))},
                "score_sheets": {"made": self.uploaded["ai_job"],
                                 **by_status(AIJobModel.objects.all())}}

    def truth(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every job the run made, as the database holds it now."""
        from academy.ai.models import AIJobModel
        from academy.videos.models import Video
        from jobbox import registry

        rows: dict[tuple[str, str], dict[str, Any]] = {}
        owners = {p.person: p for p in self.people}
        for video in Video.objects.select_related("uploaded_by", "tenant"):
            rows[("video", str(video.pk))] = self._row("video", video.tenant.slug,
                                                       video.uploaded_by.username, video)
        for job in AIJobModel.objects.select_related("created_by", "tenant"):
            rows[("ai_job", job.job_id)] = self._row("ai_job", job.tenant.slug,
                                                     job.created_by.username, job)
        for person in self.people:
            for kind, job_id in person.jobs:
                if (kind, job_id) not in rows:
                    rows[(kind, job_id)] = {"academy": person.academy, "person": person.person,
                                            "status": None, "updated_at": None,
                                            "changed_ts": None, "deleted": True,
                                            "terminal": []}
        del owners
        for key, row in rows.items():
            row["terminal"] = sorted(registry.get(key[0]).terminal_statuses)
        return rows

    @staticmethod
    def _row(kind: str, academy: str, person: str, instance: Any) -> dict[str, Any]:
        return {"academy": academy, "person": person, "status": str(instance.status),
                "updated_at": instance.updated_at.isoformat(),
                "changed_ts": instance.updated_at.timestamp(), "deleted": False}
