"""The API answers in the asker's language, as the page does: their choice (the language
cookie), else Accept-Language, else Korean; its own refusals and DRF's alike."""

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.videos.models import Video
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)


def refuse_upload(client, **headers):
    """A text file sent as a score sheet: refused with `not_xlsx`."""
    return client.post("/api/ai/jobs/", {
        "file": SimpleUploadedFile("scores.xlsx", b"not a workbook"),
        "job_type": "excel.grade_report"}, format="multipart", **headers)


def test_refusals_follow_accept_language_and_default_to_korean(alice):
    english = refuse_upload(alice.client(), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").json()
    korean = refuse_upload(alice.client(), HTTP_ACCEPT_LANGUAGE="ko-KR").json()
    unsaid = refuse_upload(alice.client()).json()
    assert english == {"detail": "The file is not an Excel workbook (.xlsx).",
                       "code": "not_xlsx"}
    assert korean["code"] == unsaid["code"] == "not_xlsx"
    assert korean["detail"] == unsaid["detail"] != english["detail"]
    assert ".xlsx" in korean["detail"] and "workbook" not in korean["detail"]


def test_the_persons_choice_wins_over_accept_language(alice):
    client = alice.client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    body = refuse_upload(client, HTTP_ACCEPT_LANGUAGE="ko").json()
    assert body["detail"] == "The file is not an Excel workbook (.xlsx)."


def test_a_refusal_with_numbers_keeps_them_in_the_translation(alice):
    response = alice.client().post("/api/videos/", {
        "file": SimpleUploadedFile("clip.mp4", b"x"), "title": "x" * 300},
        format="multipart", HTTP_ACCEPT_LANGUAGE="ko")
    detail = response.json()["detail"]
    assert response.status_code == 400 and "200" in detail
    assert "characters" not in detail  # the template's Korean, the limit filled in


def test_control_refusals_and_drfs_own_messages_follow_the_asker(alice, client):
    video = new_video(alice)
    Video.objects.filter(pk=video.pk).update(status="READY")
    path = f"/api/videos/{video.pk}/cancel/"
    english = alice.client().post(path, HTTP_ACCEPT_LANGUAGE="en").json()
    korean = alice.client().post(path, HTTP_ACCEPT_LANGUAGE="ko").json()
    assert english == {"detail": "The job has already finished.", "code": "finished"}
    assert korean == {"detail": "이미 끝난 작업입니다.", "code": "finished"}
    anonymous_en = client.get(path.replace("cancel/", ""), HTTP_ACCEPT_LANGUAGE="en").json()
    anonymous_ko = client.get(path.replace("cancel/", ""), HTTP_ACCEPT_LANGUAGE="ko").json()
    assert anonymous_en["detail"] != anonymous_ko["detail"]  # DRF's, translated by Django


def test_the_most_specific_message_is_the_one_translated(alice, settings):
    settings.VIDEO_MAX_UPLOAD_BYTES = 10
    response = alice.client().post("/api/videos/", {
        "file": SimpleUploadedFile("clip.mp4", b"x" * 64), "title": "Lecture"},
        format="multipart", HTTP_ACCEPT_LANGUAGE="ko")
    detail = response.json()["detail"]
    assert response.status_code == 400 and "10" in detail
    assert "limit" not in detail  # not the sheet's "larger than {limit} bytes" with "the limit of"
