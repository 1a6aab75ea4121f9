"""gunicorn settings, read automatically by `gunicorn main:app` from this folder.

Host, port, workers and log level come from the app's settings (.env, environment).
"""

import os

from gunicorn.glogging import Logger

from pyproject.config import layered_settings, metrics_folder

_settings = layered_settings()
# Where every worker (and the job worker) counts its metrics: see pyproject/blog/metrics.py.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_folder(_settings)))

bind = f"{_settings['HOST']}:{_settings['PORT']}"
workers = _settings["WORKERS"]
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request-line and header limits: generous for browsers, tight for abuse.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# gunicorn trusts no proxy: the app does that itself (TRUSTED_PROXIES, in
# pyproject/lib/proxies.py), for the client's address as well as the scheme, so that one
# setting decides it and a loopback client cannot set X-Forwarded-* and pretend to be HTTPS.
forwarded_allow_ips = ""
proxy_allow_ips = ""
# gunicorn's control socket lives in one place per user, and every new instance takes it
# over from the last: several sites (or test servers) on one machine would fight for it.
control_socket_disable = True
# Request lines only where the operator asks for them (ACCESS_LOG): a busy site would
# otherwise spend a share of every request writing a line nobody reads.
accesslog = _settings["ACCESS_LOG"] or None


class ProbesLeftOutLogger(Logger):
    """gunicorn's logger, without access lines for health probes (one a second per balancer)."""

    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO") in ("/healthz", "/readyz"):
            return
        super().access(resp, req, environ, request_time)


logger_class = ProbesLeftOutLogger
errorlog = "-"
loglevel = str(_settings["LOG_LEVEL"]).lower()
# Restart a worker now and then so a slow leak can never grow without bound, but rarely:
# a new worker starts with an empty page cache and cold compiled statements. The jitter
# keeps workers from restarting together (all caches cold at once).
max_requests = 200_000
max_requests_jitter = 50_000


def when_ready(server):
    """Say clearly, once, if the database is behind the code (gunicorn never migrates)."""
    try:
        from pyproject.blog.db import make_engine
        from pyproject.blog.migrate import behind_message
        from pyproject.config import load_config

        engine = make_engine(load_config()["DATABASE_URL"])
        message = behind_message(engine)
        engine.dispose()
    except Exception as error:  # the app's own start-up reports a broken configuration
        server.log.warning("Could not check the database's migrations: %s", error)
        return
    if message:
        server.log.error(message)


def on_starting(server):
    """Forget the counts of processes that no longer run (earlier runs of the site)."""
    from pathlib import Path

    from pyproject.blog.metrics import prune_dead_files

    prune_dead_files(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))


def child_exit(server, worker):
    """A worker that ended: its live gauges go (its counters keep counting in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
