"""Metrics that add up across processes (docs/explanation/architecture.md, "What we measured":
counters live per process), and a Grafana dashboard that only charts metrics jobbox has.

A real gunicorn with two workers serves polls; its /metrics, answered by whichever worker,
must show the sum of both, and consecutive scrapes must never go backwards.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from academy.videos import services
from jobbox import conf, metrics
from process_tools import free_port, stop_process
from tests.asgi_server import _wait_until_serving
from tests.video_helpers import new_video
from tests.workers import test_database_url as database_url_for_processes

BASE_DIR = Path(__file__).resolve().parents[2]
DASHBOARD = BASE_DIR / "deploy" / "grafana" / "jobbox.json"
WORKERS = 2
BATCHES = 3
POLLS_PER_BATCH = 40
CONCURRENT_POLLS = 8  # more than the workers: both of them serve
METRICS_TOKEN = "scrape-me"


@pytest.fixture
def gunicorn(tmp_path, transactional_db):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # must be emptied
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "academy.wsgi", "--config",
         str(BASE_DIR / "academy" / "gunicorn_conf.py"), "--bind", f"127.0.0.1:{port}",
         "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url_for_processes(),
             "REDIS_URL": conf.settings().REDIS_URL, "DJANGO_SETTINGS_MODULE": "academy.settings",
             "METRICS_TOKEN": METRICS_TOKEN,
             "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, base)
        yield base, metrics_dir
    finally:
        stop_process(process, grace_seconds=30)


def get(url: str, authorization: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


def video_reads(base: str) -> float:
    """Every poll of a video counted on /metrics, whatever the source of its answer."""
    text = get(f"{base}/metrics", f"Bearer {METRICS_TOKEN}").decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "jobbox_reads_total" and sample.labels.get("kind") == "video")


def test_scrapes_show_every_worker_summed_and_never_go_backwards(alice, gunicorn):
    base, metrics_dir = gunicorn
    video = new_video(alice)
    services.mark_processing(video.pk, worker_id="w1")
    url = f"{base}/api/videos/{video.pk}/"
    get(url, f"Token {alice.token}")  # the fill (threads sharing it would count once)
    scrapes = []
    with ThreadPoolExecutor(max_workers=CONCURRENT_POLLS) as pool:
        for _ in range(BATCHES):
            list(pool.map(lambda _: get(url, f"Token {alice.token}"), range(POLLS_PER_BATCH)))
            scrapes += [video_reads(base) for _ in range(2 * WORKERS)]
    pids = {int(m.group(1)) for f in metrics_dir.iterdir()
            if (m := re.fullmatch(r"counter_(\d+)\.db", f.name))}
    assert len(pids) >= WORKERS  # both workers counted polls (the stale file is gone)
    assert 1 not in pids
    expected = [1 + POLLS_PER_BATCH * (n // (2 * WORKERS) + 1) for n in range(len(scrapes))]
    assert scrapes == expected  # summed over the workers, monotonic, whoever answered


def exposed_names() -> set[str]:
    """The sample names jobbox's metrics expose (a counter as <name>_total)."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, prometheus_client.Counter):
            names.add(f"{value._name}_total")
        elif isinstance(value, prometheus_client.Gauge):
            names.add(value._name)
    return names


def test_the_grafana_dashboard_charts_only_metrics_jobbox_exposes():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel.get("targets", [])]
    queried = {name for expr in expressions for name in re.findall(r"\bjobbox_[a-z_]+", expr)}
    assert queried and queried <= exposed_names(), queried - exposed_names()
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("reads by source", "breaker", "outage", "fill", "repair", "stream"):
        assert subject in titles, subject
