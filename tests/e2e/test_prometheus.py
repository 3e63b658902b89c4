"""The Grafana dashboard and the alert rules against a real Prometheus (Debian's package):
it scrapes the service's /metrics with the metrics token while load runs, every dashboard
query returns data, the rules load, and the breaker alert fires when Redis is stopped."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from academy.videos import services
from process_tools import free_port, wait_until
from process_tools.redis_server import RedisServer
from tests.asgi_server import serve_asgi
from tests.video_helpers import new_video

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "jobbox.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "test-metrics-token"
# Grafana's $__rate_interval is at least four scrape intervals; the test scrapes every second.
RATE_INTERVAL = "20s"
# A loaded 2-core machine: room for Prometheus to start, scrape and evaluate.
WAIT_SECONDS = 90


def get_json(url: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Prometheus:
    def __init__(self, folder: Path, target: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "jobbox", "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials": TOKEN},
                "static_configs": [{"targets": [target]}],
            }],
        }))
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, expression: str) -> list:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        return get_json(url)["data"]["result"]

    def ready(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.base}/-/ready", timeout=2).status == 200
        except OSError:
            return False

    def firing(self) -> set[str]:
        alerts = get_json(f"{self.base}/api/v1/alerts")["data"]["alerts"]
        return {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            for panel in panels for target in panel.get("targets", [])]


def poll_a_while(base: str, member, video_id: int, seconds: float) -> None:
    headers = {"Authorization": f"Token {member.token}"}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in (f"/api/videos/{video_id}/", "/api/jobbox/"):
            request = urllib.request.Request(base + path, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        time.sleep(0.1)


def test_every_dashboard_query_has_data_and_the_breaker_alert_fires(alice, tmp_path,
                                                                  settings):
    if not shutil.which(PROMETHEUS):
        pytest.fail("prometheus is missing: `make test` installs Debian's prometheus package")
    assert subprocess.run(["promtool", "check", "rules", str(ALERTS)],
                          capture_output=True).returncode == 0
    redis_server = RedisServer().start()
    settings.JOBBOX = {**settings.JOBBOX, "REDIS_URL": redis_server.url}
    try:
        with serve_asgi(redis_server.url, METRICS_TOKEN=TOKEN) as base:
            prometheus = Prometheus(tmp_path, base.removeprefix("http://"))
            try:
                assert wait_until(prometheus.ready, timeout_seconds=WAIT_SECONDS)
                video = new_video(alice)
                services.mark_processing(video.pk, worker_id="w1")
                poll_a_while(base, alice, video.pk, seconds=3)
                with urllib.request.urlopen(urllib.request.Request(  # a stream, briefly
                        base + "/api/jobbox/stream",
                        headers={"Authorization": f"Token {alice.token}"}), timeout=10) as s:
                    s.readline()
                    poll_a_while(base, alice, video.pk, seconds=3)
                services.complete_video(video.pk, "hls/x/master.m3u8", duration=5)
                poll_a_while(base, alice, video.pk, seconds=3)

                missing = [q for q in dashboard_queries()
                           if not wait_until(lambda q=q: prometheus.query(q),
                                             timeout_seconds=WAIT_SECONDS)]
                assert missing == []

                redis_server.stop()  # the outage: polls go on, from the database
                fired = wait_until(lambda: (poll_a_while(base, alice, video.pk, seconds=1)
                                            or "JobboxRedisBreakerOpen" in prometheus.firing()),
                                   timeout_seconds=WAIT_SECONDS)
                assert fired
                assert prometheus.query("max(jobbox_redis_breaker_state)")[0]["value"][1] != "0"
            finally:
                prometheus.stop()
    finally:
        redis_server.stop()
