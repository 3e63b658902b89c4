"""`simulate_jobs --ai N`: AI jobs driven through the real repository and transitions."""

import io
import json

import pytest
from django.core.management import call_command

from academy.ai.models import AIJobModel
from tests.ai_helpers import poll
from tests.service.test_commands import bootstrap, demo_member

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulate_jobs_drives_ai_jobs_to_the_end_through_the_api():
    demo = bootstrap()
    out = io.StringIO()
    call_command("simulate_jobs", tenant="seoul-academy", videos=0, ai=3, seconds=1, fail=1,
                 stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["kind"] for line in lines] == ["ai_job"] * 3
    assert {line["tenant"] for line in lines} == {"seoul-academy"}
    jobs = {job.job_id: job for job in AIJobModel.objects.filter(
        job_id__in=[line["id"] for line in lines])}
    assert sorted(job.status for job in jobs.values()) == ["DONE", "DONE", "FAILED"]
    # created v1, started v2, finished v3: each through a versioned transition.
    assert {job.version for job in jobs.values()} == {3}

    seoul, busan = (demo_member(demo, n) for n in (0, 1))
    done = next(job for job in jobs.values() if job.status == "DONE")
    body = poll(seoul, done.job_id).json()
    assert body["status"] == "DONE"
    students = body["result"]["students"]
    assert len(students) == 12 and students[0]["rank"] == 1
    assert all(s["total"] == sum(s["scores"].values()) for s in students)
    assert poll(busan, done.job_id).status_code == 404


def test_simulate_jobs_refuses_a_negative_ai_count():
    from django.core.management.base import CommandError

    bootstrap()
    with pytest.raises(CommandError):
        call_command("simulate_jobs", tenant="seoul-academy", ai=-1, seconds=1)
