"""Every answer the soak's clients receive, with its time: the history the checker reads."""

import json
import threading
import time
from pathlib import Path
from typing import Any


def job_view(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a client saw of one job: its kind, id, status and last change (the version a
    client can see: every transition moves `updated_at` forward)."""
    return {"kind": kind, "id": str(body.get("id") or body.get("job_id")),
            "status": body.get("status"), "updated_at": body.get("updated_at")}


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: list[dict[str, Any]] = []

    def record(self, **answer: Any) -> None:
        answer.setdefault("t", time.time())
        with self._lock:
            self.answers.append(answer)

    def dump(self, path: Path) -> None:
        with self._lock, path.open("w") as out:
            for answer in self.answers:
                out.write(json.dumps(answer, separators=(",", ":")) + "\n")

    @staticmethod
    def load(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines() if line]
