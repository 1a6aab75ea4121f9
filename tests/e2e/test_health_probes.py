"""Health probes through a real gunicorn: they answer, and its access log leaves them out."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

from e2e.conftest import ServerHandle


def fetch(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_probes_answer_and_stay_out_of_the_access_log(
    gunicorn_factory: Callable[..., ServerHandle],
) -> None:
    server = gunicorn_factory({"ACCESS_LOG": "-"}, workers=1)
    assert fetch(f"{server.url}/healthz") == (200, {"status": "ok"})
    assert fetch(f"{server.url}/readyz") == (
        200,
        {"status": "ok", "database": "ok", "queue": "ok"},
    )
    with urllib.request.urlopen(f"{server.url}/robots.txt", timeout=10) as answer:
        assert answer.status == 200
    deadline = time.monotonic() + 10
    while '"GET /robots.txt' not in server.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.stderr_text()
    assert '"GET /robots.txt' in log  # the access log is on...
    assert "/healthz" not in log and "/readyz" not in log  # ...and leaves the probes out
