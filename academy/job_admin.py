"""What the admins of both job kinds share: the cancel and retry actions and the live view.

An action runs the same service as the API (the row lock decides, one terminal state) for
each selected job in its own tenant, and says how many it changed. The list pages show each
row's state as the database has it (every transition writes it) and read the related tenant
and person in the page's one query; a job's own page adds its live representation, as a poll
would answer it (Redis first).
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html

from academy.outcomes import Outcome
from jobbox import JobNotFound, read_job, registry

# (job id, tenant id) → what happened; the API's services.
Action = Callable[[str, int], Outcome]


def run_action(model_admin: admin.ModelAdmin, request: HttpRequest,
               rows: Iterable[models.Model], action: Action, done: str) -> None:
    job = registry.for_model(model_admin.model)
    outcomes = [action(job.job_id_of(row), getattr(row, job.tenant_field)) for row in rows]
    changed = sum(outcome == Outcome.OK for outcome in outcomes)
    left = len(outcomes) - changed
    model_admin.message_user(request, f"{changed} {done}; {left} left as they were.",
                             messages.SUCCESS if changed else messages.WARNING)


def live_representation(row: models.Model) -> str:
    """The job as a poll answers it now (status, progress, time left), pretty-printed."""
    job = registry.for_model(type(row))
    try:
        body: dict[str, Any] = read_job(job.kind, job.job_id_of(row),
                                        tenant=str(getattr(row, job.tenant_field)))
    except JobNotFound:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(body, indent=2, ensure_ascii=False))
