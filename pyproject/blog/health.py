"""Health checks for load balancers and orchestrators: is this process alive, is it ready.

`/healthz` answers 200 whenever the process can run a view at all: it touches nothing
else, so a slow database never makes a load balancer kill healthy workers. `/readyz`
answers 200 only when the database and the job queue each answer within READY_TIMEOUT
seconds, and 503 with a JSON reason otherwise, so a balancer stops sending readers to a
host that cannot serve them. Neither is ever cached, and gunicorn's access log leaves them
out (gunicorn.conf.py), so a probe every second does not bury the log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as CheckTimeout
from typing import Any

from sqlalchemy import text

from pyproject.blog import jobs
from pyproject.blog.db import get_database
from pyproject.lib import App, Request, Response, current_app

PATHS = ("/healthz", "/readyz")
# Checks run here so that a hung database or queue costs a probe its timeout, not a worker
# forever; two threads, so one hung check never holds up the other.
_CHECKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")


def _answer(status: int, body: dict[str, Any]) -> Response:
    payload = json.dumps(body, sort_keys=True)
    response = Response(payload, status=status, mimetype="application/json")
    response.headers.set("Cache-Control", "no-store")
    return response


def healthz(request: Request) -> Response:
    """The process runs and can answer."""
    return _answer(200, {"status": "ok"})


def check_database(app: App) -> None:
    with get_database(app).engine.connect() as connection:
        connection.execute(text("SELECT 1")).scalar_one()


def check_queue(app: App) -> None:
    jobs.get_queue(app).pending_count()  # a round trip to Redis, or a read of the queue file


CHECKS: dict[str, Callable[[App], None]] = {"database": check_database, "queue": check_queue}


def readiness(app: App, timeout: float) -> dict[str, str]:
    """Run every check at once; give each one's "ok" or why it failed (nothing secret)."""
    started = time.monotonic()
    running = {name: _CHECKS.submit(check, app) for name, check in CHECKS.items()}
    results = {}
    for name, future in running.items():
        left = max(0.0, timeout - (time.monotonic() - started))
        try:
            future.result(timeout=left)
        except CheckTimeout:
            results[name] = f"no answer within {timeout:g} s"
        except Exception as error:  # any failure means "not ready"
            results[name] = f"unavailable ({type(error).__name__})"
        else:
            results[name] = "ok"
    return results


def readyz(request: Request) -> Response:
    """The database and the queue answer: this host can serve readers and take jobs."""
    app = current_app()
    results = readiness(app, float(app.config["READY_TIMEOUT"]))
    ready = all(result == "ok" for result in results.values())
    return _answer(200 if ready else 503, {"status": "ok" if ready else "unavailable", **results})


def register(app: App) -> None:
    app.add_route("/healthz", healthz)
    app.add_route("/readyz", readyz)
