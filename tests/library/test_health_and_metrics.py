"""jobbox's own routes in the toy project: the health check tells which store is down while
polls can still be answered, and the metrics are shown only to a scraper with the token."""

import pytest
from django.test import Client

from tests.faults import private_redis_server

pytestmark = pytest.mark.django_db(transaction=True)

SCRAPER_TOKEN = "library-test-scraper"


def test_healthz_reports_both_stores_up():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "database": "ok"}


@pytest.mark.fault
def test_healthz_reports_redis_down_while_the_database_still_serves():
    with private_redis_server() as server:
        server.stop()
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "down", "database": "ok"}


def test_metrics_need_the_scrapers_token(settings):
    settings.JOBBOX = {**settings.JOBBOX, "METRICS_TOKEN": SCRAPER_TOKEN}
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    scraped = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPER_TOKEN}")
    assert scraped.status_code == 200
    assert b"jobbox_" in scraped.content
