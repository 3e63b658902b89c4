"""Celery tasks of the videos app: thin, they call a service by id.

docs/explanation/architecture.md, "Data flow" (the worker), and docs/explanation/states.md
(leases and the reaper).
"""

import os
import socket
from typing import Any

from celery import Task, shared_task

from academy.queue import left_to_the_reaper_if_database_down
from academy.videos import processing, reaper, services


def worker_id_of(task: Task) -> str:
    """One running attempt: host and process (a process runs one task at a time)."""
    return f"{task.request.hostname or socket.gethostname()}:{os.getpid()}"


class TranscodeTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict,
                   einfo: Any) -> None:
        # An unexpected error (storage or database trouble): give the lease up now, so the
        # reaper re-queues the video on its next run and counts the attempt.
        video_id = kwargs.get("video_id", args[0] if args else None)
        if video_id is not None:
            with left_to_the_reaper_if_database_down(f"video {video_id}"):
                services.expire_video_lease(int(video_id), worker_id=worker_id_of(self))


@shared_task(bind=True, base=TranscodeTask, name=services.TRANSCODE_TASK)
def transcode_video(self: Task, video_id: int) -> str:
    return processing.transcode(video_id=int(video_id), worker_id=worker_id_of(self))


@shared_task
def reap_expired_video_leases() -> dict[str, list[int]]:
    result = reaper.reap_expired_leases()
    return {"requeued": result.requeued, "failed": result.failed, "resent": result.resent}
