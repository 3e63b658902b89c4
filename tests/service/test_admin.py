"""Django's admin at /admin/: staff only, a superuser joins an academy there, the job lists
cost the same queries however many rows, and the cancel and retry actions run the services."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from academy.ai.models import AIJobModel
from academy.tenants.models import Membership
from academy.videos import services as videos
from academy.videos.models import Video
from tests.ai_helpers import processing_job
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def superuser_client() -> tuple[Client, object]:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client = Client()
    client.force_login(user)
    return client, user


def test_the_admin_is_for_staff_only(alice):
    anonymous = Client().get("/admin/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    member = Client()
    member.force_login(alice.user)  # a member of an academy, not staff
    assert member.get("/admin/").status_code == 302


def test_a_superuser_without_an_academy_joins_one_in_the_admin(alice, superuser_client):
    client, user = superuser_client
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/jobbox/").status_code == 404  # belongs to no academy yet
    response = client.post("/admin/tenants/membership/add/",
                           {"user": user.pk, "tenant": alice.tenant.pk, "role": "staff"})
    assert response.status_code == 302, response.content[:2000]
    assert Membership.objects.get(user=user).tenant == alice.tenant
    # Its cached principal was invalidated: the academy's jobs are its own at once.
    assert client.get("/api/jobbox/").status_code == 200


def changelist_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", ["/admin/videos/video/", "/admin/ai/aijobmodel/",
                                  "/admin/tenants/membership/"])
def test_list_pages_cost_the_same_queries_for_2_rows_as_for_12(
        alice, superuser_client, path, django_assert_max_num_queries):
    client, _ = superuser_client
    for _ in range(2):
        new_video(alice)
        processing_job(alice)
    few = changelist_queries(client, path)
    for _ in range(10):
        new_video(alice)
        processing_job(alice)
    with django_assert_max_num_queries(few):
        assert client.get(path).status_code == 200


def test_the_admins_actions_cancel_and_retry_jobs(alice, superuser_client):
    client, _ = superuser_client
    running = new_video(alice)
    videos.mark_processing(running.pk, worker_id="w1")
    job_id = processing_job(alice)
    job_pk = AIJobModel.objects.get(job_id=job_id).pk
    client.post("/admin/videos/video/", {"action": "cancel_selected",
                                         "_selected_action": [running.pk]})
    client.post("/admin/ai/aijobmodel/", {"action": "cancel_selected",
                                          "_selected_action": [job_pk]})
    assert Video.objects.get(pk=running.pk).status == "CANCELLED"
    assert AIJobModel.objects.get(job_id=job_id).status == "CANCELLED"
    client.post("/admin/videos/video/", {"action": "retry_selected",
                                         "_selected_action": [running.pk]})
    retried = Video.objects.get(pk=running.pk)
    assert (retried.status, retried.attempt) == ("UPLOADED", 2)
    page = client.get(f"/admin/videos/video/{running.pk}/change/")
    assert page.status_code == 200 and b"Live state" in page.content
