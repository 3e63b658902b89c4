"""How jobbox tracks an AI job: the seed's keys (`job:{id}:status`, `job:{id}:progress`),
states and `JobStatusView` fields, with the result served from Redis up to a size.

docs/explanation/invariants.md, invariants 1, 4 and 10: a DONE job's result rides in the
snapshot when its JSON fits `AI_RESULT_INLINE_MAX_BYTES`. A larger one travels as a summary:
each list longer than `AI_RESULT_PREVIEW_ITEMS` cut to that many, with its full length and
the link to its pages (`GET /api/ai/jobs/<id>/result/<section>/`) under `pages`, so a poll,
the box and a stream start carry a bounded size whatever the sheet held. A summary still too
large for Redis is read from the database at most once per `AI_RESULT_WINDOW_SECONDS` per
process (jobbox.large_fields). Every path renders one shape.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.urls import reverse

from academy.ai.models import AIJobModel
from jobbox import InvalidJobId, Progress, TrackedJob, large_fields

# What `secrets.token_urlsafe` produces, no shorter than a guess-proof id and no longer than
# jobbox.keys accepts.
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")

KIND = "ai_job"


class AIJobTracking(TrackedJob):
    kind = KIND
    model = AIJobModel
    status_namespace = "job"  # job:{id}:status
    progress_namespace = "job"  # job:{id}:progress
    running_statuses = frozenset({AIJobModel.Status.PROCESSING})
    terminal_statuses = frozenset({AIJobModel.Status.DONE, AIJobModel.Status.FAILED,
                                   AIJobModel.Status.CANCELLED})
    id_field = "job_id"
    owner_field = "created_by_id"

    def parse_id(self, raw: str) -> str:
        if not isinstance(raw, str) or not raw.isascii() or not JOB_ID_PATTERN.fullmatch(raw):
            raise InvalidJobId(raw)
        return raw

    def snapshot_fields(self, instance: AIJobModel) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "job_id": instance.job_id,
            "job_type": instance.job_type,
            "status": instance.status,
            "error_message": instance.error_message or None,
            # Also tells the job box when the row last changed (changed_at_field).
            "updated_at": instance.updated_at.isoformat(),
            "created_at": instance.created_at.isoformat(),
            "file_name": (instance.payload or {}).get("file_name") or None,
            "attempt": instance.attempt,
            "previous_attempts": instance.previous_attempts,
        }
        large_fields.pack(
            fields, "result", summarize(canonical(instance.result), instance.job_id),
            kind=KIND, job_id=instance.job_id,
            version=instance.version, max_bytes=settings.AI_RESULT_INLINE_MAX_BYTES,
            window_seconds=settings.AI_RESULT_WINDOW_SECONDS,
        )
        return fields

    def render(self, fields: Mapping[str, Any], progress: Progress | None) -> dict[str, Any]:
        job_id = fields["job_id"]
        result = large_fields.unpack(
            fields, "result", kind=KIND, job_id=job_id,
            load=lambda: _load_result(job_id),
            window_seconds=settings.AI_RESULT_WINDOW_SECONDS,
        )
        running = fields["status"] == AIJobModel.Status.PROCESSING
        # The seed's JobStatusView: progress while running; a finished job has none.
        return {
            "job_id": job_id,
            "job_type": fields["job_type"],
            "status": fields["status"],
            "progress": _progress_body(progress) if running and progress else None,
            "error_message": fields["error_message"],
            "result": result,
            # For the person's job card: which file, when it was sent, when it last changed
            # (for a DONE or FAILED job, when it finished).
            "file_name": fields.get("file_name"),
            "created_at": fields.get("created_at"),
            "updated_at": fields.get("updated_at"),
            # A snapshot stored before retries existed has neither: its first run.
            "attempt": fields.get("attempt", 1),
            "previous_attempts": fields.get("previous_attempts", []),
            # Seconds left at the run's smoothed rate; null until known, and once it ended.
            "eta_seconds": progress.eta_seconds if running and progress else None,
        }


def _progress_body(progress: Progress) -> dict[str, Any]:
    return {
        "percent": progress.percent,
        "step_index": progress.step_index,
        "step_total": progress.step_total,
        "step_name": progress.step_name,
        "step_percent": progress.step_percent,
    }


def _load_result(job_id: str) -> Any:
    """The one database read a result too large for Redis costs (once per window)."""
    return summarize(canonical(
        AIJobModel.objects.filter(job_id=job_id).values_list("result", flat=True).first()
    ), job_id)


def summarize(result: Any, job_id: str) -> Any:
    """The result as a poll carries it: whole if its JSON fits the inline limit; otherwise
    each list longer than `AI_RESULT_PREVIEW_ITEMS` cut to that many, and `pages` saying, for
    each list cut, its full length and where its pages are."""
    if not isinstance(result, dict) or _json_bytes(result) <= settings.AI_RESULT_INLINE_MAX_BYTES:
        return result
    preview = settings.AI_RESULT_PREVIEW_ITEMS
    summary: dict[str, Any] = {}
    pages: dict[str, Any] = {}
    for name, value in result.items():
        if isinstance(value, list) and len(value) > preview:
            summary[name] = value[:preview]
            pages[name] = {"count": len(value), "url": result_pages_url(job_id, name)}
        else:
            summary[name] = value
    if pages:
        summary["pages"] = pages
    return summary


def result_pages_url(job_id: str, section: str) -> str:
    return reverse("ai-job-result-pages", args=[job_id, section])


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def canonical(value: Any) -> Any:
    """The value with its object keys sorted: PostgreSQL's jsonb hands keys back in its own
    order, so the row a transition wrote and the row read later render the same bytes only
    once the order is fixed (invariant 4)."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))
