"""Revocation sticks (docs/explanation/invariants.md, invariant 11): no fill racing an invalidation
re-caches a revoked principal, bulk changes have a helper, logout ends a copied session cookie, and
a deleted job leaves Redis at once."""

import threading

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from rest_framework.authtoken.models import Token

import jobbox
from academy.tenants.models import Membership
from academy.videos.models import Video
from jobbox import keys
from jobbox.auth import principals
from tests.redis_peek import outside_redis
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)

# A racing fill waits this long at most for the test to make its change (a hang guard, not a
# timing assumption: the test releases it as soon as the change is made).
RACE_STEP_TIMEOUT_SECONDS = 30


class PausedFill:
    """Holds a principal fill between its database read and its Redis write, the injected
    delay the issue describes: the test changes the truth while the fill holds stale data."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, loader_name: str) -> None:
        self.read_done = threading.Event()
        self.release = threading.Event()
        original = getattr(principals, loader_name)

        def read_then_wait(*args):
            found = original(*args)
            self.read_done.set()
            assert self.release.wait(RACE_STEP_TIMEOUT_SECONDS)
            return found

        monkeypatch.setattr(principals, loader_name, read_then_wait)

    def run_in_thread(self, request) -> threading.Thread:
        def run() -> None:
            self.status = request().status_code

        thread = threading.Thread(target=run)
        thread.start()
        assert self.read_done.wait(RACE_STEP_TIMEOUT_SECONDS)
        return thread

    def finish(self, thread: threading.Thread) -> None:
        self.release.set()
        thread.join(RACE_STEP_TIMEOUT_SECONDS)


def session_client(member) -> Client:
    client = Client()
    assert client.login(username=member.user.username, password="pw-" + member.tenant.slug)
    return client


def copy_of_session(client: Client) -> Client:
    name = settings.SESSION_COOKIE_NAME
    copied = Client()
    copied.cookies[name] = client.cookies[name].value
    return copied


def test_a_fill_racing_a_token_deletion_does_not_recache_it(alice, monkeypatch):
    video = new_video(alice)
    paused = PausedFill(monkeypatch, "_load_token")
    thread = paused.run_in_thread(lambda: poll(alice, video.pk))  # read the token, then wait
    Token.objects.filter(key=alice.token).delete()
    paused.finish(thread)
    assert paused.status == 200  # the racing request itself was answered from its read
    monkeypatch.undo()
    assert poll(alice, video.pk).status_code == 401  # ...but the stale principal was not kept


def test_a_fill_racing_a_deactivation_does_not_recache_the_user(alice, monkeypatch):
    video = new_video(alice)
    client = session_client(alice)
    paused = PausedFill(monkeypatch, "_load_user")
    thread = paused.run_in_thread(lambda: client.get(f"/api/videos/{video.pk}/"))
    alice.user.is_active = False
    alice.user.save()
    paused.finish(thread)
    monkeypatch.undo()
    assert client.get(f"/api/videos/{video.pk}/").status_code in (401, 403)


def test_a_fill_between_the_change_and_its_commit_does_not_recache_it(alice, monkeypatch):
    """The fill reads after the change's first revocation (inside the transaction) but the
    database still shows the old row: the second revocation, after commit, wins."""
    video = new_video(alice)
    paused = PausedFill(monkeypatch, "_load_token")
    with transaction.atomic():
        Token.objects.filter(key=alice.token).delete()
        thread = paused.run_in_thread(lambda: poll(alice, video.pk))  # sees the old row
    paused.finish(thread)
    monkeypatch.undo()
    assert poll(alice, video.pk).status_code == 401


def test_bulk_updates_are_revoked_by_the_helper(alice, django_assert_num_queries):
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200
    users = get_user_model().objects.filter(pk=alice.user.pk)
    users.update(is_active=False)  # no signal: the cached principal still answers
    assert poll(alice, video.pk).status_code == 200
    # The ids asked for, then all their tokens at once; the invalidation recorded for replay
    # (one insert) and cleared once Redis applied it (Django's delete: a select, then the
    # delete in a transaction).
    with django_assert_num_queries(2 + 1 + 4):
        jobbox.invalidate_users(users.values_list("pk", flat=True))
    assert poll(alice, video.pk).status_code == 401


def test_a_bulk_membership_move_is_revoked_by_the_helper(alice, bob):
    alices_video, bobs_video = new_video(alice), new_video(bob)
    assert poll(alice, bobs_video.pk).status_code == 404
    moved = Membership.objects.filter(user=alice.user)
    moved.update(tenant=bob.tenant)
    jobbox.invalidate_users(moved.values_list("user_id", flat=True))
    assert poll(alice, alices_video.pk).status_code == 404
    assert poll(alice, bobs_video.pk).status_code == 200


def test_logout_ends_a_copied_session_cookie(alice):
    video = new_video(alice)
    browser = session_client(alice)
    copied = copy_of_session(browser)  # the cookie, saved elsewhere
    assert copied.get(f"/api/videos/{video.pk}/").status_code == 200
    assert browser.post("/logout/").status_code == 302
    assert copied.get(f"/api/videos/{video.pk}/").status_code in (401, 403)
    # The person logs in again: a new session works.
    assert session_client(alice).get(f"/api/videos/{video.pk}/").status_code == 200
    assert copied.get(f"/api/videos/{video.pk}/").status_code in (401, 403)


def test_logout_is_seen_by_another_process(alice):
    """The generation lives in Redis: a process that never saw the logout (its own cached
    principal, filled before) refuses the old cookie once the logout revoked it."""
    video = new_video(alice)
    browser = session_client(alice)
    copied = copy_of_session(browser)
    assert copied.get(f"/api/videos/{video.pk}/").status_code == 200  # principal cached
    stored = outside_redis().get(keys.user_principal_key(alice.user.pk))
    assert principals._decode(stored).session_generation  # the cache carries the generation
    from jobbox.auth.invalidation import session_generation

    session_generation(alice.user.pk, logout=True)  # another process's logout
    assert copied.get(f"/api/videos/{video.pk}/").status_code in (401, 403)


def test_a_session_without_a_generation_is_refused(alice):
    video = new_video(alice)
    client = session_client(alice)
    session = client.session
    del session[principals.SESSION_GENERATION_KEY]
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    assert client.get(f"/api/videos/{video.pk}/").status_code in (401, 403)


def test_a_deleted_job_leaves_redis_at_once(alice, django_assert_num_queries):
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200
    assert f'"id":{video.pk}'.encode() in alice.client().get("/api/jobbox/").content
    Video.objects.filter(pk=video.pk).delete()
    redis = outside_redis()
    assert redis.get(keys.status_key("video", str(video.pk))) is None
    assert redis.exists(keys.progress_key("job:video", str(video.pk))) == 0
    with django_assert_num_queries(0):  # the negative entry answers, not the database
        assert poll(alice, video.pk).status_code == 404
        box = alice.client().get("/api/jobbox/")
    assert box.status_code == 200
    assert box.json()["jobs"] == []


def test_a_rolled_back_deletion_leaves_the_job(alice):
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200
    with pytest.raises(RuntimeError), transaction.atomic():
        Video.objects.filter(pk=video.pk).delete()
        raise RuntimeError("rolled back")
    assert outside_redis().get(keys.status_key("video", str(video.pk))) is not None
    assert poll(alice, video.pk).status_code == 200


def test_a_deleted_ai_job_leaves_redis_too(alice, django_assert_num_queries):
    from academy.ai.models import AIJobModel
    from tests.ai_helpers import new_job

    job_id = new_job(alice)
    assert alice.client().get(f"/api/ai/jobs/{job_id}/").status_code == 200
    assert job_id.encode() in alice.client().get("/api/jobbox/").content
    AIJobModel.objects.filter(job_id=job_id).delete()
    assert outside_redis().get(keys.status_key("job", job_id)) is None
    with django_assert_num_queries(0):
        assert alice.client().get(f"/api/ai/jobs/{job_id}/").status_code == 404
        assert alice.client().get("/api/jobbox/").json()["jobs"] == []
