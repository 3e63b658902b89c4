"""The API fuzzed against its own OpenAPI schema (docs/reference/http-api.md; invariant 5: a
malformed id is a 404 or 400, never a 500).

schemathesis reads `/api/schema/` from the running WSGI application, generates requests for
every operation (ids, titles, files, job types, headers), and sends them with the demo's
tokens (`manage.py bootstrap_demo`): no answer is a 5xx, and every answer conforms to the
schema (documented status, content type and body).
"""

import io
import itertools
import json
from dataclasses import dataclass

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from academy.ai import services as ai_services
from academy.tenants.models import Membership
from academy.videos import services as video_services
from academy.webhooks import targets
from academy.wsgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_name_resolution(monkeypatch):
    """Webhook URLs the fuzzer makes up are resolved by a stub: no lookup leaves the machine
    (and no endpoint is ever contacted: nothing here delivers)."""
    monkeypatch.setattr(targets, "resolve", lambda host, port: ["93.184.216.34"])

# Examples per operation and mode: enough to reach every parameter's edge cases (empty, huge,
# unicode, control characters), few enough that both modes of the 8 operations run in under
# 2 minutes on this 2-core machine under load.
EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@dataclass
class Demo:
    tokens: list[str]
    job_ids: dict[str, list[str]]  # "videos" / "ai": ids of jobs the demo users own


def bootstrap_demo() -> Demo:
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    users = [user for tenant in json.loads(out.getvalue())["tenants"] for user in tenant["users"]]
    demo = Demo(tokens=[user["token"] for user in users], job_ids={"videos": [], "ai": []})
    for user in users:  # jobs of each kind in each state's shape, so answers have bodies
        member = Membership.objects.get(user__username=user["username"])
        video = video_services.create_video(tenant_id=member.tenant_id,
                                            uploaded_by_id=member.user_id, title="Fuzzed")
        job = ai_services.ai_job_create(
            tenant_id=member.tenant_id, created_by_id=member.user_id,
            job_type="excel.grade_report", payload={"sheet": "Scores", "data_rows": 3},
            queue=False)
        demo.job_ids["videos"].append(str(video.pk))
        demo.job_ids["ai"].append(job.job_id)
    return demo


def fuzz(operation, mode: GenerationMode, tokens) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def send(case) -> None:
        case.call_and_validate(headers={"Authorization": f"Token {next(tokens)}"},
                               checks=CHECKS)

    send()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_every_answer_conforms_and_none_is_a_server_error(mode):
    demo = bootstrap_demo()
    tokens = itertools.cycle(demo.tokens)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 21  # every DRF route of the API
    for operation in operations:
        send_known_ids(operation, demo)
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            # A GET, a cancel or a retry: only path ids, and any string is one (answered 404):
            # nothing invalid to send.
            continue
        try:
            fuzz(operation, mode, tokens)
        except Exception as failure:
            raise AssertionError(f"{operation.label}: {failure}") from failure


def send_known_ids(operation, demo: Demo) -> None:
    """Random ids name no job: each job-id operation is also called with the demo's own ids
    (with their owner's token and another tenant's), so success bodies are checked too."""
    if "job_id" not in operation.path:
        return
    ids = demo.job_ids["ai" if operation.path.startswith("/api/ai/") else "videos"]
    for job_id, token in itertools.product(ids, demo.tokens):
        case = operation.Case(path_parameters={"job_id": job_id, "file_name": "index.m3u8",
                                               "section": "students"})
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


def test_the_schema_is_served_to_anyone(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/jobbox/" in response.content and b"/api/videos/{job_id}/" in response.content
