"""Token and session authentication at zero SQL, invalidated when the truth changes."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from academy.tenants.models import Membership
from tests.video_helpers import new_video, poll

pytestmark = pytest.mark.django_db(transaction=True)


def session_client(member) -> Client:
    client = Client()
    assert client.login(username=member.user.username, password="pw-" + member.tenant.slug)
    return client


def test_session_poll_runs_no_sql(alice, django_assert_num_queries):
    video = new_video(alice)
    client = session_client(alice)
    client.get(f"/api/videos/{video.pk}/")
    with django_assert_num_queries(0):
        response = client.get(f"/api/videos/{video.pk}/")
    assert response.status_code == 200


def test_token_resolution_is_cached_after_first_request(alice, django_assert_num_queries):
    video = new_video(alice)
    with django_assert_num_queries(2):  # the token with its user, then the membership
        poll(alice, video.pk)
    with django_assert_num_queries(0):
        poll(alice, video.pk)


def test_deleted_token_stops_working_at_once(alice):
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200
    Token.objects.filter(key=alice.token).delete()
    assert poll(alice, video.pk).status_code == 401


def test_deactivated_user_is_refused_at_once(alice):
    video = new_video(alice)
    assert poll(alice, video.pk).status_code == 200
    alice.user.is_active = False
    alice.user.save()
    assert poll(alice, video.pk).status_code == 401


def test_membership_change_moves_the_user_to_the_new_tenant(alice, bob):
    alices_video, bobs_video = new_video(alice), new_video(bob)
    assert poll(alice, alices_video.pk).status_code == 200
    assert poll(alice, bobs_video.pk).status_code == 404
    Membership.objects.filter(user=alice.user).update(tenant=bob.tenant)  # no signal...
    membership = Membership.objects.get(user=alice.user)
    membership.save()  # ...until saved through the model, as the service does
    assert poll(alice, alices_video.pk).status_code == 404
    assert poll(alice, bobs_video.pk).status_code == 200


def test_password_change_ends_existing_sessions(alice):
    video = new_video(alice)
    client = session_client(alice)
    assert client.get(f"/api/videos/{video.pk}/").status_code == 200
    alice.user.set_password("a-new-password")
    alice.user.save()
    assert client.get(f"/api/videos/{video.pk}/").status_code in (401, 403)


def test_user_without_membership_sees_no_job(alice, django_user_model):
    video = new_video(alice)
    loner = django_user_model.objects.create_user(username="loner", password="pw")
    client = Client()
    client.force_login(loner)
    assert client.get(f"/api/videos/{video.pk}/").status_code == 404


def test_session_writes_require_csrf(alice):
    video = new_video(alice)
    client = Client(enforce_csrf_checks=True)
    client.login(username=alice.user.username, password="pw-alpha")
    response = client.post(f"/api/videos/{video.pk}/")
    assert response.status_code == 403
