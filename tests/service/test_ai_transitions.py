"""AI job transitions: the seed's repository `save`, versions, TTLs, after-commit writes,
no stale overwrite, a dead worker's rerun, one terminal state, the seed's helpers."""

import pytest
from django.db import transaction

from academy.ai import services
from academy.ai.domain import AIJobStatus
from academy.ai.models import AIJobModel
from academy.ai.redis_status_cache import cache_job_status, get_job_status_from_redis
from academy.ai.repositories import ConcurrentUpdate, repository
from jobbox import conf, keys, registry
from jobbox.write import store_snapshot
from tests.ai_helpers import new_job, processing_job, row, status_key, stored_snapshot
from tests.redis_peek import outside_redis

pytestmark = pytest.mark.django_db(transaction=True)


def test_job_ids_are_unguessable_tokens_within_the_key_pattern(alice):
    ids = {new_job(alice) for _ in range(5)}
    assert len(ids) == 5
    for job_id in ids:
        assert len(job_id) == 32
        keys.status_key("job", job_id)  # valid in a key name
        assert status_key(job_id) == f"{conf.settings().KEY_PREFIX}job:{{{job_id}}}:status"


def test_transitions_follow_the_seed_and_bump_the_version(alice):
    job_id = new_job(alice)
    assert stored_snapshot(job_id)["version"] == 1
    assert stored_snapshot(job_id)["owner"] == str(alice.user.pk)
    assert services.ai_job_start(job_id=job_id, worker_id="w1") == "ok"
    assert services.ai_job_complete(job_id=job_id, result={"n": 1}) == (True, "ok")
    assert services.ai_job_complete(job_id=job_id, result={"n": 2}) == (True, "idempotent")
    assert services.ai_job_fail(job_id=job_id, error_message="late") == (False, "invalid_state")
    assert services.ai_job_start(job_id=job_id, worker_id="w2") == "terminal"
    job = row(job_id)
    assert (job.status, job.version, job.result, job.leased_by, job.attempts) == (
        "DONE", 3, {"n": 1}, "", 1)
    assert stored_snapshot(job_id)["version"] == 3


def test_a_dead_workers_run_starts_again_with_newer_versions_and_no_old_progress(alice):
    job_id = processing_job(alice)  # worker w1 reported 40 % and then died
    assert services.ai_job_start(job_id=job_id, worker_id="w2") == "leased"  # its lease lives
    AIJobModel.objects.filter(job_id=job_id).update(leased_until=None)  # and then ran out
    assert services.ai_job_start(job_id=job_id, worker_id="w2") == "restarted"
    job = row(job_id)
    # Back to PENDING (v3, clearing progress) and started again (v4).
    assert (job.status, job.version, job.attempts, job.leased_by) == ("PROCESSING", 4, 2, "w2")
    assert get_job_status_from_redis(job_id)["progress"] is None
    assert stored_snapshot(job_id)["version"] == 4


def test_failure_is_idempotent_and_keeps_a_bounded_message(alice):
    job_id = processing_job(alice)
    assert services.ai_job_fail(job_id=job_id, error_message="x" * 5000) == (True, "ok")
    assert services.ai_job_fail(job_id=job_id, error_message="again") == (True, "idempotent")
    assert services.ai_job_complete(job_id=job_id, result={}) == (False, "invalid_state")
    assert len(row(job_id).error_message) == 2000


def test_missing_job_answers_not_found(db):
    assert services.ai_job_start(job_id="B" * 32) == "not_found"
    assert services.ai_job_complete(job_id="B" * 32, result={}) == (False, "not_found")
    assert services.ai_job_fail(job_id="B" * 32, error_message="x") == (False, "not_found")


def test_repository_save_creates_then_saves_changes_as_one_transition(alice):
    job_id = new_job(alice)
    job = repository.get(job_id)
    assert job.status == AIJobStatus.PENDING and job.version == 1
    repository.save(job)  # nothing changed: no transition, no version bump
    assert row(job_id).version == 1
    job.start(worker_id="w1")
    repository.save(job)
    assert (row(job_id).status, row(job_id).version, job.version) == ("PROCESSING", 2, 2)


def test_repository_save_refuses_to_overwrite_a_row_changed_since_it_was_read(alice):
    job_id = new_job(alice)
    stale = repository.get(job_id)
    services.ai_job_start(job_id=job_id, worker_id="w1")
    stale.fail(error_message="from an old read")
    with pytest.raises(ConcurrentUpdate):
        repository.save(stale)
    assert row(job_id).status == "PROCESSING"


def test_running_and_terminal_snapshots_carry_the_seeds_ttls(alice):
    job_id = processing_job(alice)
    key = status_key(job_id)
    assert conf.settings().RUNNING_TTL_SECONDS - 5 <= outside_redis().ttl(key) <= 7200
    services.ai_job_complete(job_id=job_id, result={"ok": True})
    assert 3600 - 5 <= outside_redis().ttl(key) <= 3600


def test_progress_refreshes_the_running_ttl_and_never_touches_the_database(
        alice, django_assert_num_queries):
    job_id = processing_job(alice)
    outside_redis().expire(status_key(job_id), 30)
    with django_assert_num_queries(0):
        for percent in range(0, 100, 10):
            services.ai_job_report_progress(job_id=job_id, percent=percent, step_index=2,
                                            step_total=5, step_name="validate rows")
    assert outside_redis().ttl(status_key(job_id)) > 7000
    assert outside_redis().ttl(keys.progress_key("job", job_id)) > 7000


def test_nothing_reaches_redis_before_commit_and_a_rollback_leaves_it_as_it_was(alice):
    job_id = new_job(alice)
    before = outside_redis().get(status_key(job_id))

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        assert services.ai_job_start(job_id=job_id, worker_id="w1") == "ok"
        assert outside_redis().get(status_key(job_id)) == before
        raise Abort
    assert outside_redis().get(status_key(job_id)) == before
    assert row(job_id).status == "PENDING"


def test_a_created_job_is_neither_in_redis_nor_queued_before_commit(alice):
    from tests.ai_helpers import queued_messages

    with transaction.atomic():
        job = services.ai_job_create(tenant_id=alice.tenant.pk, created_by_id=alice.user.pk,
                                     job_type="excel.grade_report", payload={})
        assert stored_snapshot(job.job_id) is None
        assert queued_messages() == 0
    assert stored_snapshot(job.job_id)["status"] == "PENDING"
    assert queued_messages() == 1


def test_commit_makes_the_transition_visible_from_another_connection(alice):
    job_id = new_job(alice)
    with transaction.atomic():
        services.ai_job_start(job_id=job_id, worker_id="w1")
        assert stored_snapshot(job_id)["status"] == "PENDING"
    assert stored_snapshot(job_id)["status"] == "PROCESSING"


def test_a_slow_fill_never_overwrites_a_newer_transition(alice):
    job_id = new_job(alice)
    tracked = registry.get("ai_job")
    old = tracked.snapshot_of(row(job_id))  # a reader's fill, read at v1
    services.ai_job_start(job_id=job_id, worker_id="w1")
    services.ai_job_complete(job_id=job_id, result={"final": True})
    assert store_snapshot(old) is False  # arrives late: refused
    assert stored_snapshot(job_id)["status"] == "DONE"
    assert get_job_status_from_redis(job_id)["result"] == {"final": True}


def test_seed_helpers_wrap_the_library(alice):
    job_id = new_job(alice)
    outside_redis().delete(status_key(job_id))
    assert get_job_status_from_redis(job_id) is None
    assert cache_job_status(job_id) is True
    assert cache_job_status(job_id) is False  # same version: nothing newer to store
    assert get_job_status_from_redis(job_id)["status"] == "PENDING"
    assert cache_job_status("C" * 32) is False
    assert get_job_status_from_redis("not a valid id") is None


def test_a_task_failing_on_a_database_outage_leaves_its_job_to_the_reaper_and_the_worker_up(
        alice, monkeypatch):
    """The database restarting under a running job: the job is not at fault (it stays
    PROCESSING, for its lease and the reaper), and a failure hook whose own write meets the
    outage logs it instead of raising (Celery stops a worker whose failure hook raises)."""
    from django.db import OperationalError

    from academy.ai.tasks import AIJobTask

    job_id = processing_job(alice)
    hook = AIJobTask().on_failure
    hook(OperationalError("connection refused"), "task-1", (job_id,), {}, None)
    assert AIJobModel.objects.get(job_id=job_id).status == AIJobStatus.PROCESSING

    def database_down(**_: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "ai_job_fail", database_down)
    hook(ValueError("a broken sheet"), "task-2", (job_id,), {}, None)  # does not raise
    assert AIJobModel.objects.get(job_id=job_id).status == AIJobStatus.PROCESSING
