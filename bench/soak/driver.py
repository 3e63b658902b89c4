"""The soak's jobs: academies and people seeded, simulated videos created, moved through
their states and sometimes deleted (as a worker and an admin would, through the service's
functions), real score sheets uploaded for the Celery workers; then every job driven to its
end, and the database's truth read for the checker."""

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
                 stop: threading.Event) -> None:
        super().__init__(name="driver", daemon=True)
        self.people, self.bases, self.recorder, self.stop = people, bases, recorder, stop
        self.deleted_at: dict[tuple[str, str], float] = {}
        self.next_sheet = 0.0

    def run(self) -> None:
        from django.db import DatabaseError, InterfaceError, close_old_connections

        while not self.stop.is_set():
            try:
                if time.monotonic() >= self.next_sheet:
                    self.next_sheet = time.monotonic() + 4.0
                    self.upload_sheet(random.choice(self.people))
                self.step()
            except (DatabaseError, InterfaceError):
                close_old_connections()  # the database is restarting: try again later
            self.stop.wait(0.3)
        close_old_connections()

    def person_of(self, video: Any) -> Person:
        return next(p for p in self.people if p.person == video.uploaded_by.username)

    def step(self) -> None:
        from academy.videos import services
        from academy.videos.models import Video

        open_videos = list(Video.objects.exclude(status__in=["READY", "FAILED"])
                           .select_related("uploaded_by")[:50])
        if random.random() < CREATE_SHARE and len(open_videos) < MAX_OPEN_VIDEOS:
            person = random.choice(self.people)
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.select_related("membership").get(
                username=person.person)
            video = services.create_video(tenant_id=user.membership.tenant_id,
                                          uploaded_by_id=user.pk, title="soak")
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

    def upload_sheet(self, person: Person) -> None:
        base = random.choice(self.bases)
        sent = time.time()
        try:
            answer = requests.post(
                base + "/api/ai/jobs/", headers={"Authorization": f"Token {person.token}"},
                files={"file": ("scores.xlsx", sheet_bytes())},
                data={"job_type": "excel.grade_report"}, timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            self.recorder.record(client="driver", academy=person.academy,
                                 person=person.person, op="create", sent=sent, status=None,
                                 error=type(exc).__name__)
            return
        self.recorder.record(client="driver", academy=person.academy, person=person.person,
                             op="create", sent=sent, status=answer.status_code,
                             retry_after=answer.headers.get("Retry-After"))
        if answer.status_code in (200, 201, 202):
            body = answer.json()
            person.jobs.append(("ai_job", str(body.get("job_id") or body.get("id"))))

    def finish_all(self, *, timeout_seconds: float) -> None:
        """Every simulated video driven to its end; the score sheets left to the workers (a
        killed worker's job comes back through its lease and the reaper)."""
        from academy.ai.models import AIJobModel
        from academy.videos.models import Video
        from jobbox import registry

        deadline = time.monotonic() + timeout_seconds
        ai_terminal = sorted(registry.get("ai_job").terminal_statuses)
        while time.monotonic() < deadline:
            open_videos = list(Video.objects.exclude(status__in=["READY", "FAILED"])
                               .values_list("pk", flat=True))
            for video_id in open_videos:
                self.advance(video_id)
            if not open_videos and not AIJobModel.objects.exclude(
                    status__in=ai_terminal).exists():
                return
            time.sleep(0.5)

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
