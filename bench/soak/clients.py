"""The soak's clients: people who poll their jobs, read their boxes, hold event streams with
resume, and now and then ask for another academy's job. Every answer is recorded."""

import http.client
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.soak.recorder import Recorder, job_view

# Each client waits about this long between requests: a person's page polls about once a
# second; several clients per person make the load.
CLIENT_PAUSE_SECONDS = 0.2
# A request that gets no answer in this long counts as failed (a paused Redis must not make
# a poll wait past its fallback; a killed web process answers nothing).
REQUEST_TIMEOUT_SECONDS = 10
# A stream is dropped and resumed from its last event id this often (a browser's reconnect).
STREAM_RESUME_SECONDS = 15
HEARTBEAT = ":heartbeat"
BOX_MAX_JOBS = 100
POLL_URLS = {"video": "/api/videos/{}/", "ai_job": "/api/ai/jobs/{}/"}


@dataclass
class Person:
    academy: str
    person: str
    token: str
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (kind, id) this person made


def box_views(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [job_view(entry["kind"], {**entry["job"], "id": entry["id"]})
            for entry in body.get("jobs", [])]


def etag_version(etag: str | None) -> int | None:
    """The version a poll's ETag names (`"v<version>.<digest>"`), None for any other tag."""
    tag = (etag or "").removeprefix("W/").strip('"')
    number = tag.removeprefix("v").partition(".")[0]
    return int(number) if tag.startswith("v") and number.isdigit() else None


class Held:
    """The version a client holds of each job, sent back: a poll's `If-None-Match: "v<n>"`
    (the version alone, never the whole ETag: every poll is answered in full and recorded,
    no 304), a box's `X-Jobbox-Versions`; no server then answers it an older state."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], int] = {}

    def poll_headers(self, kind: str, job_id: str) -> dict[str, str]:
        version = self.versions.get((kind, job_id))
        return {"If-None-Match": f'"v{version}"'} if version is not None else {}

    def box_headers(self, jobs: list[tuple[str, str]]) -> dict[str, str]:
        """The versions held of `jobs` (the person's: a deleted one is no longer named)."""
        named = ",".join(f"{kind}:{job_id}={self.versions[(kind, job_id)]}"
                         for kind, job_id in jobs if (kind, job_id) in self.versions)
        return {"X-Jobbox-Versions": named} if named else {}

    def learn_poll(self, kind: str, job_id: str, etag: str | None) -> None:
        version = etag_version(etag)
        if version is not None:
            self.learn(kind, job_id, version)

    def learn_box(self, body: dict[str, Any]) -> None:
        for entry in body.get("jobs", []):
            if isinstance(entry.get("version"), int):
                self.learn(entry["kind"], str(entry["id"]), entry["version"])

    def learn(self, kind: str, job_id: str, version: int) -> None:
        key = (kind, job_id)
        self.versions[key] = max(version, self.versions.get(key, version))


class PollClient(threading.Thread):
    def __init__(self, name: str, person: Person, strangers: list[Person], bases: list[str],
                 recorder: Recorder, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.person, self.strangers, self.bases = person, strangers, bases
        self.recorder, self.stop = recorder, stop
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {person.token}"
        self.held = Held()

    def run(self) -> None:
        while not self.stop.is_set():
            roll = random.random()
            if roll < 0.25 or not self.person.jobs:
                self.get("box", "/api/jobbox/")
            elif roll < 0.30 and any(s.jobs for s in self.strangers):
                kind, job_id = random.choice(random.choice(
                    [s for s in self.strangers if s.jobs]).jobs)
                self.get("foreign", POLL_URLS[kind].format(job_id), kind=kind, job_id=job_id)
            else:
                kind, job_id = random.choice(self.person.jobs)
                self.get("poll", POLL_URLS[kind].format(job_id), kind=kind, job_id=job_id)
            self.stop.wait(CLIENT_PAUSE_SECONDS)

    def get(self, op: str, path: str, **about: str) -> None:
        base = random.choice(self.bases)
        started = time.time()
        try:
            answer = self.session.get(base + path, headers=self.headers(op, **about),
                                      timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            self.recorder.record(client=self.name, academy=self.person.academy,
                                 person=self.person.person, op=op, path=path, base=base,
                                 sent=started, status=None, error=type(exc).__name__, **about)
            return
        views: list[dict[str, Any]] = []
        if answer.status_code == 200:
            body = answer.json()
            views = box_views(body) if op == "box" else [job_view(about["kind"], body)]
            self.learn(op, body, answer.headers.get("ETag"), **about)
        self.recorder.record(client=self.name, academy=self.person.academy,
                             person=self.person.person, op=op, path=path, base=base,
                             sent=started, status=answer.status_code,
                             retry_after=answer.headers.get("Retry-After"), jobs=views, **about)


    def headers(self, op: str, **about: str) -> dict[str, str]:
        if op == "box":
            # The newest jobs a box can hold (jobbox's BOX_MAX_JOBS default).
            return self.held.box_headers(self.person.jobs[-BOX_MAX_JOBS:])
        return self.held.poll_headers(about["kind"], about["job_id"]) if op == "poll" else {}

    def learn(self, op: str, body: dict[str, Any], etag: str | None, **about: str) -> None:
        if op == "box":
            self.held.learn_box(body)
        elif op == "poll":
            self.held.learn_poll(about["kind"], about["job_id"], etag)


class StreamClient(threading.Thread):
    """Holds the person's event stream; drops it every STREAM_RESUME_SECONDS and resumes
    with Last-Event-ID, as a browser does."""

    def __init__(self, name: str, person: Person, bases: list[str], recorder: Recorder,
                 stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.person, self.bases, self.recorder, self.stop = person, bases, recorder, stop
        self.last_event_id: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.hold(random.choice(self.bases))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.recorder.record(client=self.name, academy=self.person.academy,
                                     person=self.person.person, op="stream", status=None,
                                     error=type(exc).__name__)
                self.stop.wait(1.0)

    def hold(self, base: str) -> None:
        host = base.removeprefix("http://")
        connection = http.client.HTTPConnection(host, timeout=REQUEST_TIMEOUT_SECONDS)
        headers = {"Authorization": f"Token {self.person.token}"}
        resumed = self.last_event_id is not None
        if resumed:
            headers["Last-Event-ID"] = self.last_event_id or ""
        try:
            connection.request("GET", "/api/jobbox/stream", headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                self.recorder.record(client=self.name, academy=self.person.academy,
                                     person=self.person.person, op="stream",
                                     status=response.status,
                                     retry_after=response.getheader("Retry-After"))
                self.stop.wait(1.0)
                return
            ends_at = time.monotonic() + STREAM_RESUME_SECONDS * random.uniform(0.5, 1.5)
            first = True
            for name, event_id, data in read_events(response):
                if name != HEARTBEAT:
                    self.record_event(name, event_id, data, resumed=resumed, first=first)
                    first = False
                if event_id:
                    self.last_event_id = event_id
                if self.stop.is_set() or time.monotonic() > ends_at:
                    return
        finally:
            connection.close()

    def record_event(self, name: str, event_id: str | None, data: Any, *, resumed: bool,
                     first: bool) -> None:
        if name in ("box", "resync"):
            views = box_views(data)
        elif name in ("changed", "progressed"):
            views = [job_view(data["kind"], {**data["job"], "id": data["id"]})]
        else:
            views = []
        self.recorder.record(client=self.name, academy=self.person.academy,
                             person=self.person.person, op="stream", status=200, event=name,
                             event_id=event_id, resumed=resumed, first=first, jobs=views,
                             deleted=[data["kind"], str(data["id"])] if name == "deleted"
                             else None, recovered=data.get("recovered")
                             if isinstance(data, dict) else None)


def read_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, str | None, Any]]:
    name, event_id, data = "message", None, []
    while True:
        line = response.readline().decode()
        if line == "":
            return
        line = line.rstrip("\n")
        if line.startswith(":"):
            yield HEARTBEAT, None, None  # the reader may stop between events
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "":
            if data:
                yield name, event_id, json.loads("\n".join(data))
            name, event_id, data = "message", None, []
