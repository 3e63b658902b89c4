"""Progress of a running job: a Redis hash only, never the database (DESIGN.md, invariant 9).

`report_progress` is what a worker calls as it goes; it also keeps the job's snapshot alive
(the seed's "2 h, refreshed by progress").
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass

from jobbox import conf, keys
from jobbox.client import get_redis, redis_errors


@dataclass(frozen=True, slots=True)
class Progress:
    percent: int
    step_index: int | None = None
    step_total: int | None = None
    step_name: str | None = None
    step_percent: int | None = None
    updated_at: float | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> "Progress | None":
        """Parse a stored hash; anything malformed reads as "no progress", never an error."""
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        try:
            return cls(
                percent=_clamp_percent(fields["percent"]),
                step_index=_optional_int(fields.get("step_index")),
                step_total=_optional_int(fields.get("step_total")),
                step_name=fields.get("step_name") or None,
                step_percent=_optional_percent(fields.get("step_percent")),
                updated_at=float(fields["updated_at"]) if fields.get("updated_at") else None,
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return None


def _clamp_percent(value: float | str) -> int:
    return max(0, min(100, int(float(value))))


def _optional_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _optional_percent(value: str | None) -> int | None:
    return _clamp_percent(value) if value not in (None, "") else None


def report_progress(
    kind: str,
    job_id: str,
    *,
    percent: float,
    step_index: int | None = None,
    step_total: int | None = None,
    step_name: str | None = None,
    step_percent: float | None = None,
) -> bool:
    """Record progress; False when the job already ended (a late report changes nothing).

    Raises `RedisUnavailable`: progress is best effort, the caller decides whether to care.
    """
    from jobbox import registry

    job = registry.get(kind)
    pairs: list[str | int] = ["updated_at", repr(time.time())]
    for name, value in (
        ("step_index", step_index),
        ("step_total", step_total),
        ("step_name", step_name),
        ("step_percent", None if step_percent is None else _clamp_percent(step_percent)),
    ):
        if value is not None:
            pairs += [name, value]
    with redis_errors():
        stored = _progress_script()(
            keys=[
                keys.status_key(job.status_namespace, job_id),
                keys.progress_key(job.progress_namespace, job_id),
                keys.jobbox_events_key(),
            ],
            args=[conf.get("RUNNING_TTL_SECONDS"), _clamp_percent(percent),
                  conf.get("PROGRESS_EVENT_INTERVAL_MS"), conf.get("EVENT_STREAM_MAXLEN"),
                  *pairs],
        )
    return bool(stored)


def _progress_script():
    from jobbox.scripts import script

    return script("report_progress", get_redis())
