"""A small Server-Sent Events reader over http.client, for the stream tests."""

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# How long a test waits for one expected event before failing (not a speed assertion).
EVENT_WAIT_SECONDS = 20.0


@dataclass
class Event:
    name: str
    id: str | None
    data: Any


class SSEStream:
    def __init__(self, base: str, token: str, last_event_id: str | None = None) -> None:
        self.connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=1.0)
        headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", "/api/jobbox/stream", headers=headers)
        self.connection.sock.settimeout(EVENT_WAIT_SECONDS)
        self.response = self.connection.getresponse()
        self.heartbeats = 0

    def next_event(self, timeout: float = EVENT_WAIT_SECONDS) -> Event:
        deadline = time.monotonic() + timeout
        name, event_id, data = "message", None, []
        while time.monotonic() < deadline:
            line = self.response.readline().decode()
            if line == "":
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if line.startswith(":"):
                self.heartbeats += 1
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return Event(name, event_id, json.loads("\n".join(data)))
        raise TimeoutError("no event in time")

    def until(self, predicate: Any, limit: int = 200) -> list[Event]:
        """Events up to and including the first that satisfies `predicate`."""
        seen = []
        for _ in range(limit):
            event = self.next_event()
            seen.append(event)
            if predicate(event):
                return seen
        raise AssertionError(f"no matching event among {len(seen)}")

    def close(self) -> None:
        self.connection.close()


def is_status(status: str, job_id: int | None = None) -> Any:
    def check(event: Event) -> bool:
        return (event.name == "changed" and event.data["job"]["status"] == status
                and (job_id is None or event.data["job"]["id"] == job_id))
    return check
