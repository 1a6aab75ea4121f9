"""Metrics in the Prometheus text format at /metrics, counted by every process of the site.

Counted: requests by view and status, their latency by view, page-cache hits and misses,
jobs by name and outcome (complete, error, retrying, ...), emails sent and failed (the
outcomes of the mail job), deliveries to other sites by kind and outcome
(`count_delivery`, for Webmention and federation). Read at each scrape: the queue's depth,
the age of its oldest waiting job, and whether a worker has been seen.

gunicorn runs several worker processes and the job worker runs apart, so counts live in
files in one folder (`prometheus_client`'s multiprocess mode) when PROMETHEUS_MULTIPROC_DIR
is set before this module is imported: gunicorn.conf.py and main.py set it to
instance/metrics. Without it (tests in process), counts live in this process's memory.
/metrics answers only clients whose address is in METRICS_ALLOW (loopback by default),
and 404 to everyone else, as if it did not exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from huey import signals as S
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from pyproject.blog import jobs
from pyproject.blog.db import get_db
from pyproject.blog.models import utcnow
from pyproject.lib import App, Observed, Request, Response, current_app
from pyproject.lib.exceptions import NotFound
from pyproject.lib.proxies import is_trusted, parse_address, parse_networks

MULTIPROCESS_FOLDER = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

REQUESTS = Counter(
    "pyproject_requests", "Requests answered, by view and status.", ("endpoint", "status")
)
LATENCY = Histogram(
    "pyproject_request_seconds",
    "Time from a request's start to its headers, by view.",
    ("endpoint",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PAGE_CACHE = Counter(
    "pyproject_page_cache",
    "Anonymous reads the page cache answered (hit) or not (miss).",
    ("result",),
)
JOBS = Counter("pyproject_jobs", "Job runs by job and outcome.", ("job", "outcome"))
EMAILS = Counter(
    "pyproject_emails", "Emails by outcome: sent, or failed (to be retried).", ("outcome",)
)
DELIVERIES = Counter(
    "pyproject_deliveries", "Deliveries to other sites, by kind and outcome.", ("kind", "outcome")
)

# What a job's run ended as, by huey's signal.
OUTCOMES = {
    S.SIGNAL_COMPLETE: "complete",
    S.SIGNAL_ERROR: "error",
    S.SIGNAL_RETRYING: "retrying",
    S.SIGNAL_EXPIRED: "expired",
    S.SIGNAL_REVOKED: "revoked",
    S.SIGNAL_CANCELED: "canceled",
    S.SIGNAL_INTERRUPTED: "interrupted",
    S.SIGNAL_TIMEOUT: "timeout",
}
_UNSAFE_LABEL = re.compile(r"[^a-z0-9_.:-]")


# The labelled children a request touches, found once (labels() takes a lock and builds
# a key on every call; the children themselves stay the same for the process's life).
_REQUEST_CHILDREN: dict[tuple[str, str], Any] = {}
_LATENCY_CHILDREN: dict[str, Any] = {}
_CACHE_CHILDREN: dict[str, Any] = {}


def observe(seen: Observed) -> None:
    """Count one request (App.observer): never raises, whatever the metrics do."""
    try:
        endpoint = seen.endpoint or "unmatched"
        key = (endpoint, seen.status)
        requests = _REQUEST_CHILDREN.get(key)
        if requests is None:
            requests = _REQUEST_CHILDREN.setdefault(key, REQUESTS.labels(endpoint, seen.status))
        requests.inc()
        latency = _LATENCY_CHILDREN.get(endpoint)
        if latency is None:
            latency = _LATENCY_CHILDREN.setdefault(endpoint, LATENCY.labels(endpoint))
        latency.observe(seen.seconds)
        if seen.cache is not None:
            cache = _CACHE_CHILDREN.get(seen.cache)
            if cache is None:
                cache = _CACHE_CHILDREN.setdefault(seen.cache, PAGE_CACHE.labels(seen.cache))
            cache.inc()
    except Exception:  # a full disk must not cost a reader their page
        return


def count_delivery(kind: str, outcome: str) -> None:
    """Count one delivery to another site ("webmention", "activitypub"; "sent", "failed")."""
    DELIVERIES.labels(_UNSAFE_LABEL.sub("_", kind.lower()), _UNSAFE_LABEL.sub("_", outcome)).inc()


def count_job(signal: str, task: Any, *_: Any) -> None:
    """Count a job's run by its outcome; the mail job's also as an email sent or failed."""
    outcome = OUTCOMES.get(signal)
    if outcome is None:
        return
    JOBS.labels(task.name, outcome).inc()
    if task.name == "pyproject.blog.mail.send_mail":
        if outcome == "complete":
            EMAILS.labels("sent").inc()
        elif outcome in ("error", "retrying"):
            EMAILS.labels("failed").inc()


class Gauges:
    """A collector that gives gauge families read at the scrape."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Any:
        yield from self.families


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text)
    family.add_metric([], value)
    return family


def queue_gauges(app: App, request: Request) -> list[GaugeMetricFamily]:
    """The queue as the scrape finds it: depth, the oldest waiting job's age, a worker seen."""
    state = jobs.queue_state(app, get_db(request))
    age = 0.0
    if state.oldest_waiting is not None:
        age = max(0.0, (utcnow() - state.oldest_waiting).total_seconds())
    on = 1.0 if state.worker_running else 0.0
    depth = state.waiting + state.scheduled
    return [
        _gauge("pyproject_queue_waiting", "Jobs waiting in the queue.", depth),
        _gauge("pyproject_queue_oldest_seconds", "Age of the oldest job not yet done.", age),
        _gauge("pyproject_worker_running", "1 if a job worker was seen in the last minute.", on),
    ]


def exposition(app: App, request: Request) -> bytes:
    """Give every process's counts and the queue's state, in the Prometheus text format."""
    if MULTIPROCESS_FOLDER:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    live = CollectorRegistry()
    live.register(Gauges(queue_gauges(app, request)))
    return counted + generate_latest(live)


def metrics(request: Request) -> Response:
    """The counts, for a Prometheus scraping from an address in METRICS_ALLOW."""
    app = current_app()
    if not is_trusted(parse_address(request.remote_addr), app.extensions["metrics_allow"]):
        raise NotFound()
    response = Response(exposition(app, request), mimetype="text/plain")
    response.headers.set("Content-Type", CONTENT_TYPE_LATEST)
    response.headers.set("Cache-Control", "no-store")
    return response


def prune_dead_files(folder: Path) -> int:
    """Delete the count files of processes that no longer run; give how many went.

    gunicorn calls it as it starts. A live process's files stay: the job worker may have
    started first. Counters of dead processes would otherwise be summed in for ever.
    """
    removed = 0
    for path in folder.glob("*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            removed += 1
        except PermissionError:  # another user's live process
            continue
    return removed


def init_app(app: App) -> None:
    """Count every request, and every job the queue runs (after jobs.init_app)."""
    app.extensions["metrics_allow"] = parse_networks(app.config["METRICS_ALLOW"])
    app.observer = observe
    queue = jobs.get_queue(app)
    queue.signal(*OUTCOMES)(count_job)


def register(app: App) -> None:
    app.add_route("/metrics", metrics)
