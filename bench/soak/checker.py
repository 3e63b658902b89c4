"""The soak's checker: properties proven over the whole recorded history.

Each violation names the answers that show it. `check()` is pure (a history, the database's
truth at the end, the faults with their times), so a test can feed it a history that breaks
a property on purpose and see it reported.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

# After the last fault clears and the last job changed, every view must equal the database
# within this long (a reconciler pass and a breaker probe fit in it).
CONVERGE_SECONDS = 5.0
# A 503 is documented while the database is unreachable; the web process learns it is back
# on its next connection attempt, so answers this soon after the outage still count.
DATABASE_OUTAGE_GRACE_SECONDS = 10.0
# Faults during which Redis cannot serve a stream (its box and history live there).
REDIS_FAULTS = ("redis_killed", "redis_paused", "redis_latency", "master_failover")
# The service's outage copies live this long (jobbox's FALLBACK_CACHE_SECONDS default).
FALLBACK_CACHE_SECONDS = 1.0
# Counted after a Redis fault: the breaker's open interval (2 s) and the soak's settle (3 s).
OUTAGE_TAIL_SECONDS = 5.0
# Job kinds the soak makes (each has its outage batch read).
JOB_KINDS = 2
# Examples kept per property in the report (the count is always whole).
EXAMPLES_PER_PROPERTY = 5

PROPERTIES = (
    "version_backwards", "foreign_job", "server_error", "not_terminal", "stale_after_faults",
    "resurrected_after_delete", "stream_resume_without_resync", "stream_view_wrong",
    "baseline_not_restored", "outage_reads_over_budget",
)

JobKey = tuple[str, str]


def _changed(view: dict[str, Any]) -> datetime | None:
    raw = view.get("updated_at")
    return datetime.fromisoformat(raw) if raw else None


class Violations:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(PROPERTIES, 0)
        self.examples: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, prop: str, why: str, *answers: dict[str, Any]) -> None:
        self.counts[prop] += 1
        if len(self.examples[prop]) < EXAMPLES_PER_PROPERTY:
            self.examples[prop].append({"why": why, "answers": list(answers)})


def check(answers: list[dict[str, Any]], truth: dict[JobKey, dict[str, Any]],
          faults: list[dict[str, Any]], *, converge_from: float,
          baseline: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
          skip: Iterable[str] = ()) -> Violations:
    """`truth`: every job ever made, by (kind, id): academy, person, status, updated_at,
    deleted, terminal (the kind's terminal statuses). `skip` names properties not checked
    (a test weakening a guarantee on purpose)."""
    skipped = set(skip)
    found = Violations()
    ordered = sorted(answers, key=lambda a: a["t"])
    checks = {
        "version_backwards": lambda: _versions_forward(ordered, found),
        "foreign_job": lambda: _own_jobs_only(ordered, truth, found),
        "server_error": lambda: _no_server_errors(ordered, faults, found),
        "not_terminal": lambda: _all_terminal(truth, found),
        "stale_after_faults": lambda: _converged(ordered, truth, converge_from, found),
        "stream_resume_without_resync": lambda: _resumes_recovered(ordered, found),
        "stream_view_wrong": lambda: _stream_views(ordered, truth, found),
        "baseline_not_restored": lambda: _baseline(baseline or {}, after or {}, found),
        "outage_reads_over_budget": lambda: _outage_reads(faults, len(truth), found),
    }
    for prop, run in checks.items():
        if prop not in skipped:
            run()
    return found


def _versions_forward(ordered: list[dict[str, Any]], found: Violations) -> None:
    """No client ever sees a job's last change (its version) go backwards, nor a job's state
    change without its version moving."""
    seen: dict[tuple[str, JobKey], tuple[datetime, str, dict[str, Any]]] = {}
    for answer in ordered:
        for view in answer.get("jobs") or []:
            changed = _changed(view)
            if changed is None:
                continue
            key = (answer["client"], (view["kind"], view["id"]))
            before = seen.get(key)
            if before is not None:
                if changed < before[0]:
                    found.add("version_backwards", f"{key[1]} went from {before[0]} to "
                              f"{changed}", before[2], answer)
                    continue
                if changed == before[0] and view["status"] != before[1]:
                    found.add("version_backwards", f"{key[1]} changed state "
                              f"{before[1]} -> {view['status']} at one version", before[2],
                              answer)
            seen[key] = (changed, view["status"], answer)


def _own_jobs_only(ordered: list[dict[str, Any]], truth: dict[JobKey, dict[str, Any]],
                   found: Violations) -> None:
    """No answer carries another academy's job (nor, in a box or stream, another person's);
    another academy's job is a 404 like a missing one."""
    for answer in ordered:
        if answer.get("op") == "foreign" and answer.get("status") not in (404, None, 503):
            found.add("foreign_job", "another academy's job was not a 404", answer)
        for view in answer.get("jobs") or []:
            owner = truth.get((view["kind"], view["id"]))
            if owner is None:
                continue
            if owner["academy"] != answer["academy"] or (
                    answer["op"] in ("box", "stream") and owner["person"] != answer["person"]):
                found.add("foreign_job", f"{view['kind']} {view['id']} belongs to "
                          f"{owner['academy']}/{owner['person']}", answer)


def _no_server_errors(ordered: list[dict[str, Any]], faults: list[dict[str, Any]],
                      found: Violations) -> None:
    """No 5xx but the documented 503 with Retry-After, and that only while the database is
    unreachable (or, for a stream, which lives on Redis, while Redis is)."""
    def windows(kinds: tuple[str, ...]) -> list[tuple[float, float]]:
        return [(f["start"], f["end"] + DATABASE_OUTAGE_GRACE_SECONDS) for f in faults
                if f["kind"] in kinds]

    database = windows(("postgres_restarted",))
    redis = database + windows(REDIS_FAULTS)
    for answer in ordered:
        status = answer.get("status")
        if status is None or status < 500:
            continue
        sent = answer.get("sent", answer["t"])
        outages = redis if answer.get("op") == "stream" else database
        during_outage = any(start <= answer["t"] and sent <= end for start, end in outages)
        if not (status == 503 and answer.get("retry_after") and during_outage):
            found.add("server_error", f"{status} outside the documented database outage",
                      answer)


def _all_terminal(truth: dict[JobKey, dict[str, Any]], found: Violations) -> None:
    for key, row in truth.items():
        if not row["deleted"] and row["status"] not in row["terminal"]:
            found.add("not_terminal", f"{key} ended the run {row['status']}", {"job": row})


def _matches(view: dict[str, Any], row: dict[str, Any]) -> bool:
    return view["status"] == row["status"] and _changed(view) == _changed(row)


def _converged(ordered: list[dict[str, Any]], truth: dict[JobKey, dict[str, Any]],
               converge_from: float, found: Violations) -> None:
    """From `converge_from` (the last fault cleared and the last job changed, plus
    CONVERGE_SECONDS) every answer equals the database: none stale, none lost, none
    resurrected after its delete."""
    for answer in ordered:
        if answer["t"] < converge_from or answer.get("status") is None:
            continue
        if answer["op"] == "poll":
            row = truth.get((answer["kind"], answer["job_id"]))
            if row is None:
                continue
            if row["deleted"]:
                if answer["status"] != 404:
                    found.add("resurrected_after_delete", "a deleted job answered "
                              f"{answer['status']}", answer)
            elif answer["status"] != 200 or not _matches(answer["jobs"][0], row):
                found.add("stale_after_faults", "the poll differs from the database",
                          answer, {"database": row})
        # A stream's events are history (a resume replays what it missed, in order): its
        # view is checked once all are applied (`_stream_views`), not event by event.
        for view in answer.get("jobs") or [] if answer["op"] == "box" else []:
            row = truth.get((view["kind"], view["id"]))
            if row is None:
                continue
            if row["deleted"]:
                found.add("resurrected_after_delete", f"{view['kind']} {view['id']} is in "
                          "a box after its delete", answer)
            elif not _matches(view, row):
                found.add("stale_after_faults", f"{view['kind']} {view['id']} differs from "
                          "the database", answer, {"database": row})


def _resumes_recovered(ordered: list[dict[str, Any]], found: Violations) -> None:
    """A resumed stream either replays what followed its last event or says
    `recovered: false` with a resync; a plain `box` after a resume would hide lost events."""
    for answer in ordered:
        if (answer.get("op") == "stream" and answer.get("resumed") and answer.get("first")
                and answer.get("event") == "box"):
            found.add("stream_resume_without_resync", "a resume got a box, not a resync",
                      answer)
        if answer.get("event") == "resync" and answer.get("recovered") is not False:
            found.add("stream_resume_without_resync", "a resync without recovered: false",
                      answer)


def _stream_views(ordered: list[dict[str, Any]], truth: dict[JobKey, dict[str, Any]],
                  found: Violations) -> None:
    """What each stream client shows at the end (its boxes, resyncs and events applied in
    order) equals the database for every job it shows; deleted jobs are gone."""
    shown: dict[str, dict[JobKey, dict[str, Any]]] = defaultdict(dict)
    last: dict[str, dict[str, Any]] = {}
    for answer in ordered:
        if answer.get("op") != "stream" or answer.get("status") != 200:
            continue
        client = answer["client"]
        last[client] = answer
        if answer.get("event") in ("box", "resync"):
            shown[client] = {}
        if answer.get("deleted"):
            shown[client].pop(tuple(answer["deleted"]), None)
        for view in answer.get("jobs") or []:
            key = (view["kind"], view["id"])
            before = shown[client].get(key)
            if before is None or (_changed(view) or datetime.min) >= (
                    _changed(before) or datetime.min):
                shown[client][key] = view
    for client, views in shown.items():
        for key, view in views.items():
            row = truth.get(key)
            if row is None:
                continue
            if row["deleted"]:
                found.add("stream_view_wrong", f"{key} still shown after its delete",
                          last[client])
            elif not _matches(view, row) and view["status"] != row["status"]:
                found.add("stream_view_wrong", f"{key} shown {view['status']}, the database "
                          f"says {row['status']}", last[client], {"database": row})


def outage_read_budget(fault: dict[str, Any], jobs: int) -> float:
    """Job-table reads one web process may make across a Redis fault: each job at most once
    per FALLBACK_CACHE_SECONDS (its outage copy) for as long as the fault, the breaker's
    open interval and the settle after it last, plus one batch read per kind per interval."""
    seconds = fault["end"] - fault["start"] + OUTAGE_TAIL_SECONDS
    intervals = seconds / FALLBACK_CACHE_SECONDS + 1
    return (jobs + JOB_KINDS) * intervals


def _outage_reads(faults: list[dict[str, Any]], jobs: int, found: Violations) -> None:
    for fault in faults:
        for process, reads in (fault.get("job_reads") or {}).items():
            budget = outage_read_budget(fault, jobs)
            if reads > budget:
                found.add("outage_reads_over_budget", f"{process} read {reads:.0f} job rows "
                          f"across {fault['kind']}, budget {budget:.0f}", {"fault": fault})


def _baseline(baseline: dict[str, Any], after: dict[str, Any], found: Violations) -> None:
    """Once the clients are gone: no stream left open, and every Redis connection held by a
    live process of the stack, within what its pools may hold (a pool keeps the idle
    connections a fault's pile-up made it open, up to its cap; a connection beyond the cap,
    or of a process killed during the run, is a leak). Figures without the connections'
    owners are held to the count under load before the faults (a little slack)."""
    if not after:
        return
    if after.get("streams_open", 0) != 0:
        found.add("baseline_not_restored", "streams still open after the clients left",
                  {"after": after})
    by_process, allowed = after.get("redis_connections_by_process"), after.get(
        "redis_connections_allowed")
    if by_process is None or allowed is None:
        if after.get("redis_connections", 0) > baseline.get("redis_connections", 0) + 4:
            found.add("baseline_not_restored", "more Redis connections than before the load",
                      {"baseline": baseline, "after": after})
        return
    for process, count in sorted(by_process.items()):
        if process not in allowed:
            found.add("baseline_not_restored", f"{count} Redis connections of {process}, no "
                      "live process of the stack", {"after": after})
        elif count > allowed[process]:
            found.add("baseline_not_restored", f"{process} holds {count} Redis connections, "
                      f"more than its {allowed[process]}", {"after": after})
