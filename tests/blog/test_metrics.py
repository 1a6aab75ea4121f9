"""Tests for pyproject/blog/metrics.py: /metrics counts requests, the page cache, jobs and
the queue, and answers only the addresses in METRICS_ALLOW."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jobs_for_tests
import pytest

from blog.conftest import make_blog_app
from pyproject.blog import jobs, metrics
from pyproject.blog.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Give every sample of an exposition by (name, labels)."""
    found = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = frozenset(
            tuple(pair.split("=", 1)) for pair in (match["labels"] or "").split(",") if pair
        )
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(client: TestClient, name: str, **labels: str) -> float:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    wanted = frozenset((key, f'"{label}"') for key, label in labels.items())
    return samples(answer.text).get((name, wanted), 0.0)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = make_blog_app(
        tmp_path, overrides={"JOB_MODULES": "tests.jobs_for_tests", "JOB_RETRY_SECONDS": 0.2}
    )
    yield application
    get_database(application).dispose()


def test_requests_are_counted_by_view_and_status(app: App) -> None:
    client = app.test_client()
    before_home = value(client, "pyproject_requests_total", endpoint="home", status="200")
    before_missing = value(client, "pyproject_requests_total", endpoint="unmatched", status="404")
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    assert value(client, "pyproject_requests_total", endpoint="home", status="200") == (
        before_home + 3
    )
    assert value(client, "pyproject_requests_total", endpoint="unmatched", status="404") == (
        before_missing + 1
    )
    count = value(client, "pyproject_request_seconds_count", endpoint="home")
    assert count >= 3


def test_page_cache_hits_and_misses_are_counted(app: App) -> None:
    reader, scraper = app.test_client(), app.test_client()
    hits = value(scraper, "pyproject_page_cache_total", result="hit")
    misses = value(scraper, "pyproject_page_cache_total", result="miss")
    reader.get("/tags")  # first: made by the app, and kept
    reader.get("/tags")  # then answered from the cache
    reader.get("/tags")
    assert value(scraper, "pyproject_page_cache_total", result="miss") >= misses + 1
    assert value(scraper, "pyproject_page_cache_total", result="hit") >= hits + 2
    # The cache's answers still count as the view's requests.
    assert value(scraper, "pyproject_requests_total", endpoint="tags_index", status="200") >= 3


def test_jobs_are_counted_by_outcome_and_the_queue_is_read_at_the_scrape(
    app: App, tmp_path: Path
) -> None:
    client = app.test_client()
    name = jobs_for_tests.note.name
    done = value(client, "pyproject_jobs_total", job=name, outcome="complete")
    with get_database(app).write() as db:
        jobs.enqueue(db, jobs_for_tests.note, str(tmp_path / "out"), "hello")
    assert value(client, "pyproject_queue_waiting") == 1
    assert value(client, "pyproject_worker_running") == 0
    worker = jobs.Worker(app, threads=1)
    worker.start()
    try:
        deadline = time.monotonic() + 15
        while value(client, "pyproject_jobs_total", job=name, outcome="complete") == done:
            assert time.monotonic() < deadline, "the job was never counted"
            time.sleep(0.05)
        assert value(client, "pyproject_worker_running") == 1
    finally:
        worker.stop()
    assert value(client, "pyproject_queue_waiting") == 0
    assert value(client, "pyproject_queue_oldest_seconds") == 0


@pytest.mark.parametrize("address", ["192.0.2.7", "10.0.0.1", "2001:db8::1"])
def test_metrics_are_a_404_to_anyone_not_allowed(app: App, address: str) -> None:
    stranger = app.test_client(environ_overrides={"REMOTE_ADDR": address})
    answer = stranger.get("/metrics")
    assert answer.status_code == 404
    assert "pyproject_" not in answer.text


def test_metrics_allow_names_who_may_read_them(tmp_path: Path) -> None:
    app = make_blog_app(tmp_path, overrides={"METRICS_ALLOW": "10.9.0.0/16"})
    try:
        inside = app.test_client(environ_overrides={"REMOTE_ADDR": "10.9.3.4"})
        assert inside.get("/metrics").status_code == 200
        assert inside.get("/metrics").headers["Cache-Control"] == "no-store"
        assert app.test_client().get("/metrics").status_code == 404  # loopback is not listed
    finally:
        get_database(app).dispose()


def test_a_bad_metrics_allow_is_refused_naming_it(tmp_path: Path) -> None:
    from pyproject.config import ConfigError

    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        make_blog_app(tmp_path, overrides={"METRICS_ALLOW": "monitoring.example"})


def test_delivery_kinds_and_outcomes_become_safe_labels(app: App) -> None:
    client = app.test_client()
    before = value(client, "pyproject_deliveries_total", kind="webmention", outcome="sent")
    metrics.count_delivery("WebMention", "sent")
    metrics.count_delivery('bad"kind\n', "sent")
    assert value(client, "pyproject_deliveries_total", kind="webmention", outcome="sent") == (
        before + 1
    )
    assert value(client, "pyproject_deliveries_total", kind="bad_kind_", outcome="sent") >= 1


def test_the_files_of_processes_that_ended_are_pruned(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(ended.stdout)
    for name in (f"counter_{dead_pid}.db", f"histogram_{dead_pid}.db", f"counter_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes_x.db").write_bytes(b"")
    assert metrics.prune_dead_files(tmp_path) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"counter_{os.getpid()}.db",
        "notes_x.db",
    ]
