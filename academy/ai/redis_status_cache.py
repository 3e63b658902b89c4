"""The seed's AI job status helpers, now thin wrappers over jobbox (seed, step 1).

`get_job_status_from_redis` answers from Redis (status and progress); a result too large
for the snapshot is read once per window as jobbox.large_fields describes.
"""

from typing import Any

from academy.ai.models import AIJobModel
from academy.ai.tracking import KIND
from jobbox import cache_committed, cached_representation
from jobbox.keys import InvalidKeyPart


def get_job_status_from_redis(job_id: str) -> dict[str, Any] | None:
    """The job's representation as Redis holds it; None on a miss or while Redis is down."""
    try:
        return cached_representation(KIND, job_id)
    except InvalidKeyPart:
        return None


def cache_job_status(job_id: str) -> bool:
    """Store the job's committed state in Redis (never older than what Redis holds)."""
    job = AIJobModel.objects.filter(job_id=job_id).first()
    return cache_committed(job) if job else False
