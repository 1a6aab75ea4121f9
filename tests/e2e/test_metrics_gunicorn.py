"""Metrics through a real gunicorn with several workers: /metrics sums every process."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from e2e.conftest import ServerHandle


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return answer.read().decode()


def count(exposition: str, line_start: str) -> float:
    found = [line for line in exposition.splitlines() if line.startswith(line_start)]
    assert len(found) == 1, f"{line_start!r} in {found}"
    return float(found[0].rsplit(" ", 1)[1])


def counting_pids(server: ServerHandle) -> set[str]:
    """Give the processes that have counted something in the server's metrics folder."""
    return {re.sub(r"\D", "", path.stem) for path in (server.data_dir / "metrics").iterdir()}


def test_metrics_sum_the_requests_every_worker_answered(
    gunicorn_factory: Callable[..., ServerHandle],
) -> None:
    server = gunicorn_factory(workers=3)
    sent = 0
    with ThreadPoolExecutor(max_workers=6) as pool:  # concurrent: several workers answer
        while sent < 600 and (sent < 60 or len(counting_pids(server)) < 2):
            list(pool.map(fetch, [f"{server.url}/robots.txt"] * 30))
            sent += 30
    assert len(counting_pids(server)) >= 2, "one worker answered everything: nothing to sum"
    exposition = fetch(f"{server.url}/metrics")
    assert count(exposition, 'pyproject_requests_total{endpoint="robots",status="200"}') == sent
    assert count(exposition, "pyproject_queue_waiting ") >= 0
