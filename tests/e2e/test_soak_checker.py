"""The soak's checker catches what it is there to catch: histories that break one guarantee
on purpose are reported, with the answers that show it; the same history with that check
switched off is not."""

import pytest

from bench.soak.checker import CONVERGE_SECONDS, check, outage_read_budget

T0 = 1_000_000.0
FIRST, SECOND = "2026-12-07T10:00:00+00:00", "2026-12-07T10:00:05+00:00"
TRUTH = {
    ("video", "1"): {"academy": "north", "person": "north-0", "status": "READY",
                     "updated_at": SECOND, "deleted": False, "terminal": ["FAILED", "READY"]},
    ("video", "2"): {"academy": "south", "person": "south-0", "status": "READY",
                     "updated_at": SECOND, "deleted": False, "terminal": ["FAILED", "READY"]},
    ("video", "3"): {"academy": "north", "person": "north-0", "status": None,
                     "updated_at": None, "deleted": True, "terminal": ["FAILED", "READY"]},
}
# Every answer is from before convergence unless a test says otherwise.
CONVERGE_FROM = T0 + 1000


def poll(t: float, status: str, updated_at: str, *, job_id: str = "1", code: int = 200,
         **extra: object) -> dict:
    return {"t": t, "client": "poll-north-0-0", "academy": "north", "person": "north-0",
            "op": "poll", "kind": "video", "job_id": job_id, "status": code,
            "jobs": [{"kind": "video", "id": job_id, "status": status,
                      "updated_at": updated_at}], **extra}


def box(t: float, *jobs: tuple[str, str, str]) -> dict:
    return {"t": t, "client": "poll-north-0-0", "academy": "north", "person": "north-0",
            "op": "box", "status": 200,
            "jobs": [{"kind": "video", "id": i, "status": s, "updated_at": u}
                     for i, s, u in jobs]}


def test_a_version_going_backwards_is_reported_with_both_answers():
    newer = poll(T0, "PROCESSING", SECOND)
    older = poll(T0 + 1, "UPLOADED", FIRST)

    found = check([newer, older], TRUTH, [], converge_from=CONVERGE_FROM)

    assert found.counts["version_backwards"] == 1
    assert found.examples["version_backwards"][0]["answers"] == [newer, older]
    assert sum(found.counts.values()) == 1


def test_with_the_version_check_switched_off_the_same_history_passes():
    history = [poll(T0, "PROCESSING", SECOND), poll(T0 + 1, "UPLOADED", FIRST)]

    found = check(history, TRUTH, [], converge_from=CONVERGE_FROM,
                  skip=("version_backwards",))

    assert sum(found.counts.values()) == 0


def test_a_state_change_without_a_new_version_is_reported():
    history = [poll(T0, "PROCESSING", FIRST), poll(T0 + 1, "READY", FIRST)]

    assert check(history, TRUTH, [], converge_from=CONVERGE_FROM).counts[
        "version_backwards"] == 1


def test_another_academys_job_in_a_box_is_reported():
    history = [box(T0, ("2", "READY", SECOND))]

    assert check(history, TRUTH, [], converge_from=CONVERGE_FROM).counts["foreign_job"] == 1


def test_a_503_is_allowed_only_with_retry_after_during_the_database_outage():
    outage = [{"kind": "postgres_restarted", "start": T0, "end": T0 + 3}]
    during = poll(T0 + 1, "READY", SECOND, code=503, retry_after="1")
    without_header = poll(T0 + 2, "READY", SECOND, code=503)
    long_after = poll(T0 + 500, "READY", SECOND, code=503, retry_after="1")

    found = check([during, without_header, long_after], TRUTH, outage,
                  converge_from=CONVERGE_FROM)

    assert found.counts["server_error"] == 2
    assert [e["answers"][0] for e in found.examples["server_error"]] == [
        without_header, long_after]


def test_a_stale_answer_after_the_faults_cleared_is_reported():
    late = CONVERGE_FROM + CONVERGE_SECONDS
    history = [poll(late, "PROCESSING", FIRST)]

    assert check(history, TRUTH, [], converge_from=CONVERGE_FROM).counts[
        "stale_after_faults"] == 1


def test_a_deleted_job_seen_again_after_the_faults_cleared_is_reported():
    late = CONVERGE_FROM + CONVERGE_SECONDS
    history = [box(late, ("3", "READY", SECOND)),
               poll(late + 1, "READY", SECOND, job_id="3")]

    assert check(history, TRUTH, [], converge_from=CONVERGE_FROM).counts[
        "resurrected_after_delete"] == 2


def test_a_resumed_stream_that_gets_a_plain_box_is_reported():
    resumed = {"t": T0, "client": "stream-north-0", "academy": "north", "person": "north-0",
               "op": "stream", "status": 200, "event": "box", "resumed": True, "first": True,
               "jobs": []}

    assert check([resumed], TRUTH, [], converge_from=CONVERGE_FROM).counts[
        "stream_resume_without_resync"] == 1


def test_a_stream_left_open_after_the_run_is_reported():
    found = check([], {}, [], converge_from=CONVERGE_FROM,
                  baseline={"redis_connections": 10}, after={"streams_open": 1,
                                                             "redis_connections": 10})

    assert found.counts["baseline_not_restored"] == 1


def test_a_web_process_reading_past_its_outage_budget_is_reported():
    fault = {"kind": "redis_killed", "start": T0, "end": T0 + 4}
    budget = outage_read_budget(fault, len(TRUTH))
    within = {**fault, "job_reads": {"web-0:1": budget}}
    past = {**fault, "job_reads": {"web-1:2": budget + 1}}

    found = check([], TRUTH, [within, past], converge_from=CONVERGE_FROM)

    assert found.counts["outage_reads_over_budget"] == 1
    assert "web-1:2" in found.examples["outage_reads_over_budget"][0]["why"]


def test_a_resumed_stream_replaying_older_events_is_not_stale_if_its_view_ends_right():
    late = CONVERGE_FROM + CONVERGE_SECONDS

    def event(t: float, status: str, updated_at: str) -> dict:
        return {"t": t, "client": "stream-north-0", "academy": "north", "person": "north-0",
                "op": "stream", "status": 200, "event": "changed", "resumed": True,
                "first": False, "jobs": [{"kind": "video", "id": "1", "status": status,
                                          "updated_at": updated_at}]}

    replayed = [event(late, "PROCESSING", FIRST), event(late + 0.1, "READY", SECOND)]
    assert sum(check(replayed, TRUTH, [], converge_from=CONVERGE_FROM).counts.values()) == 0

    cut_short = replayed[:1]
    assert check(cut_short, TRUTH, [], converge_from=CONVERGE_FROM).counts[
        "stream_view_wrong"] == 1


def test_a_tolerated_property_is_reported_but_fails_no_run_and_others_still_do():
    from bench.soak.run import failing_violations

    assert failing_violations({"version_backwards": 2, "foreign_job": 0},
                              {"version_backwards"}) == 0
    assert failing_violations({"version_backwards": 2, "foreign_job": 0}, set()) == 2
    assert failing_violations({"version_backwards": 0, "foreign_job": 1},
                              {"version_backwards"}) == 1
    with pytest.raises(SystemExit):
        failing_violations({"version_backwards": 0}, {"versoin_backwards"})


def test_pools_grown_within_their_caps_are_not_a_leak_but_past_a_cap_or_orphaned_are():
    allowed = {"soak-web-0": 10, "soak-web-1": 10, "worker-0": 8, "soak runner": 9}
    under_load = {"streams_open": 4, "redis_connections": 12}
    grown = {"streams_open": 0, "redis_connections": 24, "redis_connections_allowed": allowed,
             "redis_connections_by_process": {"soak-web-0": 10, "soak-web-1": 10,
                                              "worker-0": 1, "soak runner": 3}}
    leaked = {**grown, "redis_connections_by_process": {
        "soak-web-0": 11, "soak-web-1": 10, "pid 4242": 2, "soak runner": 1}}

    assert check([], {}, [], converge_from=CONVERGE_FROM, baseline=under_load,
                 after=grown).counts["baseline_not_restored"] == 0
    found = check([], {}, [], converge_from=CONVERGE_FROM, baseline=under_load, after=leaked)
    assert found.counts["baseline_not_restored"] == 2
    assert {example["why"] for example in found.examples["baseline_not_restored"]} == {
        "soak-web-0 holds 11 Redis connections, more than its 10",
        "2 Redis connections of pid 4242, no live process of the stack"}
