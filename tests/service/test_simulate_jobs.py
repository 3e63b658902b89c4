"""The demo's simulated jobs: they hold their leases while driven (the reapers leave them to
the simulator), and `--fail N` fails N jobs in all."""

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connections

from academy.ai import reaper as ai_reaper
from academy.ai.models import AIJobModel
from academy.videos import reaper as video_reaper
from academy.videos.models import Video
from jobbox import read_job

pytestmark = pytest.mark.django_db(transaction=True)


def bootstrap() -> None:
    call_command("bootstrap_demo", stdout=io.StringIO(), stderr=io.StringIO())


def test_fail_n_fails_n_jobs_in_all_not_n_of_each_kind():
    bootstrap()
    call_command("simulate_jobs", tenant="seoul-academy", videos=2, ai=2, seconds=0.5,
                 fail=1, stdout=io.StringIO(), stderr=io.StringIO())
    statuses = [*Video.objects.values_list("status", flat=True),
                *AIJobModel.objects.values_list("status", flat=True)]
    assert sorted(statuses) == ["DONE", "DONE", "FAILED", "READY"]


def test_simulated_jobs_hold_their_leases_while_the_reapers_run(settings):
    # Leases far shorter than the drive: only renewals keep the reapers away.
    settings.AI_LEASE_SECONDS = 1
    settings.VIDEO_LEASE_SECONDS = 1
    bootstrap()
    driving = threading.Event()
    requeued: list[object] = []

    def reap_until_done() -> None:
        while not driving.is_set():
            requeued.extend(ai_reaper.reap_ai_jobs().requeued)
            requeued.extend(video_reaper.reap_expired_leases().requeued)
            driving.wait(0.2)
        connections.close_all()

    reaper = threading.Thread(target=reap_until_done)
    reaper.start()
    try:
        call_command("simulate_jobs", tenant="seoul-academy", videos=1, ai=2, seconds=4,
                     stdout=io.StringIO(), stderr=io.StringIO())
    finally:
        driving.set()
        reaper.join()
    assert requeued == []
    assert sorted(AIJobModel.objects.values_list("status", "attempts")) == [
        ("DONE", 1), ("DONE", 1)]
    assert list(Video.objects.values_list("status", flat=True)) == ["READY"]


def test_a_ready_simulated_video_shows_its_last_step_done():
    bootstrap()
    call_command("simulate_jobs", tenant="seoul-academy", videos=1, seconds=0.5,
                 stdout=io.StringIO(), stderr=io.StringIO())
    video = Video.objects.get()
    body = read_job("video", str(video.pk), tenant=str(video.tenant_id))
    assert (body["status"], body["encoding_progress"], body["encoding_step_index"],
            body["encoding_step_percent"]) == ("READY", 100, 4, 100)
