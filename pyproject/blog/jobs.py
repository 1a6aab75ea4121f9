"""Work after the response: jobs on a huey queue, and the site's ledger of them.

Jobs are functions in the area that owns them, registered here with `@job(...)`; each
takes ids and strings (never objects), reads the current state when it runs, and is safe
to run twice. A view calls `enqueue(db, some_job, *args)`: a row goes into the `jobs`
ledger in the view's own transaction, and the job reaches the queue only after that
transaction commits (a rolled-back save leaves no job). `python main.py worker` runs the
consumer.

The queue is huey (PyPI `huey`): a SQLite file beside the database by default
(`instance/queue.sqlite3`, nothing to install), Redis with `QUEUE_URL=redis://...` for
a site on several hosts. huey takes a message off the queue when a worker starts it, so
a worker killed mid-job would lose it: the ledger, which the worker marks running,
lets the next worker send it again (`recover`), and jobs are written to be idempotent.
Retries back off exponentially up to a cap; a job whose retries run out stays in the
ledger as failed, with its error, for /admin/jobs to retry or discard.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey import signals as S
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import Session

from pyproject.blog.auth import admin_required
from pyproject.blog.db import Database, get_database, get_db
from pyproject.blog.models import JobRecord, WorkerRecord, utcnow
from pyproject.cli import command
from pyproject.lib import (
    App,
    Request,
    Response,
    current_request,
    flash,
    redirect,
    render_template,
    url_for,
)
from pyproject.lib import current_app as request_app
from pyproject.lib.exceptions import NotFound

log = logging.getLogger("pyproject.jobs")

RETRY_CAP = 15 * 60  # never more than this between two tries (JOB_RETRY_SECONDS doubles)
HEARTBEAT_SECONDS = 15
WORKER_GONE = timedelta(minutes=1)  # a worker not seen for this long is not running
LOST_AFTER = timedelta(minutes=5)  # a waiting job the queue does not hold by then is resent


@dataclass
class Job:
    """A function registered as a job: its name on the queue and its retry policy."""

    func: Callable[..., Any]
    name: str
    retries: int
    periodic: Any = None  # a huey crontab for jobs the worker's scheduler starts
    task: Any = field(default=None, repr=False)  # the huey task, once a queue exists

    def __call__(self, *args: Any) -> Any:
        """Run the job here and now (in a command or a test), not through the queue."""
        return self.func(*args)


JOBS: dict[str, Job] = {}
_WORKER_APP: list[App] = []  # the app whose worker runs jobs in this process


def job(*, retries: int = 5, name: str | None = None, periodic: Any = None):
    """Register the decorated function as a job (retried `retries` times on errors)."""

    def decorator(func: Callable[..., Any]) -> Job:
        registered = Job(func, name or f"{func.__module__}.{func.__qualname__}", retries, periodic)
        JOBS[registered.name] = registered
        return registered

    return decorator


def current_app() -> App:
    """Give the request's app, or outside a request the app this process's worker runs."""
    if current_request() is not None or not _WORKER_APP:
        return request_app()
    return _WORKER_APP[-1]


# --- the queue ----------------------------------------------------------------------------


def make_queue(config: dict[str, Any]) -> Huey:
    """Give the huey instance the settings ask for: SQLite beside the data, or Redis."""
    url = str(config.get("QUEUE_URL") or "")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("pyproject", url=url, results=False, utc=True)
    if url:
        raise ValueError(f"QUEUE_URL must be empty (SQLite) or a redis:// URL, not {url!r}")
    folder = Path(config["INSTANCE_PATH"])
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("pyproject", filename=str(folder / "queue.sqlite3"), results=False, utc=True)


def get_queue(app: App) -> Huey:
    return app.extensions["queue"]


def init_app(app: App, database: Database) -> None:
    """Give the app its queue, with every registered job on it, and the ledger's hooks."""
    queue = make_queue(app.config)
    app.extensions["queue"] = queue
    for module in filter(None, str(app.config.get("JOB_MODULES") or "").split(",")):
        __import__(module.strip())  # jobs of plugins (and of tests) register themselves
    delay = float(app.config.get("JOB_RETRY_SECONDS", 10))
    for registered in JOBS.values():
        _put_on(queue, registered, delay)
    _connect_ledger(queue, database)
    _send_after_commit(database, queue)


def _put_on(queue: Huey, registered: Job, delay: float) -> None:
    def run(*args: Any, task: Any = None) -> Any:
        try:
            return registered.func(*args)
        except Exception:
            if task is not None and task.retry_delay:
                task.retry_delay = min(task.retry_delay, RETRY_CAP)
            raise

    options = {"name": registered.name, "context": True}
    if registered.periodic is not None:
        registered.task = queue.periodic_task(registered.periodic, **options)(run)
    else:
        registered.task = queue.task(
            retries=registered.retries, retry_delay=delay, retry_backoff=2, **options
        )(run)


def enqueue(db: Session, registered: Job, *args: Any) -> str:
    """Ask for a job once `db`'s transaction commits; give its id.

    Arguments must be JSON: ids and strings, read afresh by the job when it runs.
    """
    if registered.periodic is not None:
        raise ValueError(f"{registered.name} runs on a schedule; it is not enqueued")
    job_id = uuid.uuid4().hex
    now = utcnow()
    db.add(
        JobRecord(
            id=job_id,
            name=registered.name,
            args=json.dumps(list(args)),
            state="waiting",
            attempts=0,
            error="",
            worker="",
            enqueued_at=now,
            changed_at=now,
        )
    )
    db.info.setdefault("jobs_after_commit", []).append((registered, args, job_id))
    return job_id


def _send_after_commit(database: Database, queue: Huey) -> None:
    @event.listens_for(database.sessions, "after_commit")
    def send(session: Session) -> None:
        for registered, args, job_id in session.info.pop("jobs_after_commit", ()):
            try:
                queue.enqueue(registered.task.s(*args, id=job_id))
            except Exception:  # the queue is away: the ledger has it; recover() sends it
                log.exception("could not hand job %s to the queue", job_id)

    @event.listens_for(database.sessions, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop("jobs_after_commit", None)


# --- the ledger, kept by the worker ------------------------------------------------------------


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _connect_ledger(queue: Huey, database: Database) -> None:
    def set_state(task: Any, **values: Any) -> None:
        if task.name not in JOBS or JOBS[task.name].periodic is not None:
            return
        with database.write() as db:
            db.execute(
                update(JobRecord)
                .where(JobRecord.id == task.id)
                .values(changed_at=utcnow(), **values)
            )

    @queue.signal(S.SIGNAL_EXECUTING)
    def started(signal: str, task: Any) -> None:
        set_state(task, state="running", worker=worker_id(), attempts=JobRecord.attempts + 1)

    @queue.signal(S.SIGNAL_COMPLETE)
    def done(signal: str, task: Any) -> None:
        if task.name in JOBS and JOBS[task.name].periodic is None:
            with database.write() as db:
                db.execute(delete(JobRecord).where(JobRecord.id == task.id))

    @queue.signal(S.SIGNAL_ERROR)
    def failed(signal: str, task: Any, error: Exception) -> None:
        text = f"{type(error).__name__}: {error}"[:2000]
        final = not task.retries
        set_state(task, state="failed" if final else "waiting", error=text, worker="")


def heartbeat(database: Database, me: str) -> None:
    """Say this worker is alive (and forget workers not seen for a day)."""
    now = utcnow()
    with database.write() as db:
        record = db.get(WorkerRecord, me)
        if record is None:
            db.add(WorkerRecord(id=me, started_at=now, seen_at=now))
        else:
            record.seen_at = now
        db.execute(delete(WorkerRecord).where(WorkerRecord.seen_at < now - timedelta(days=1)))


def _alive_here(worker: str) -> bool | None:
    """Give whether a worker on this host is still running (None for another host's)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(app: App) -> int:
    """Send again the jobs a dead worker was running, and those the queue never got.

    A job running on a worker of this host whose process is gone, or on a worker not
    seen for WORKER_GONE, is sent again; so is a job still waiting after LOST_AFTER that
    the queue holds nowhere (the process that committed it died before handing it
    over). Jobs are idempotent: at worst one runs twice. Gives how many were sent.
    """
    database, queue = get_database(app), get_queue(app)
    now = utcnow()
    with database.read() as db:
        seen = dict(db.execute(select(WorkerRecord.id, WorkerRecord.seen_at)).all())
        rows = db.execute(
            select(
                JobRecord.id,
                JobRecord.name,
                JobRecord.args,
                JobRecord.state,
                JobRecord.worker,
                JobRecord.enqueued_at,
            ).where(JobRecord.state.in_(("running", "waiting")))
        ).all()
    queued: set[str] | None = None
    resent = 0
    for job_id, name, args, state, worker, enqueued_at in rows:
        if state == "running":
            alive = _alive_here(worker)
            if alive is None:
                alive = worker in seen and now - seen[worker] < WORKER_GONE
            if alive:
                continue
        else:
            if now - enqueued_at < LOST_AFTER:
                continue
            if queued is None:
                queued = {t.id for t in queue.pending()} | {t.id for t in queue.scheduled()}
            if job_id in queued:
                continue
        if _resend(app, job_id, name, args):
            resent += 1
    return resent


def _resend(app: App, job_id: str, name: str, args: str) -> bool:
    with get_database(app).write() as db:
        return send_again(db, job_id, name, args)


def send_again(db: Session, job_id: str, name: str, args: str) -> bool:
    """Mark a ledger job waiting and give it to the queue again once `db` commits."""
    registered = JOBS.get(name)
    if registered is None or registered.task is None:
        return False
    db.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id)
        .values(state="waiting", worker="", changed_at=utcnow())
    )
    db.info.setdefault("jobs_after_commit", []).append((registered, json.loads(args), job_id))
    log.warning("sending job %s (%s) again", job_id, name)
    return True


def retry_failed(db: Session, job_id: str) -> bool:
    """Send a failed job again, with its retries renewed (the admin's Retry button).

    In `db`'s transaction; the queue gets the job when it commits.
    """
    row = db.get(JobRecord, job_id)
    if row is None or row.state != "failed":
        return False
    return send_again(db, job_id, row.name, row.args)


def discard_failed(db: Session, job_id: str) -> bool:
    """Forget a failed job (the admin's Discard button), in `db`'s transaction."""
    done = db.execute(delete(JobRecord).where(JobRecord.id == job_id, JobRecord.state == "failed"))
    return bool(done.rowcount)


@dataclass
class QueueState:
    """What /admin/jobs and the dashboard show of the queue."""

    waiting: int  # in the queue now (huey's count)
    scheduled: int  # retries and delayed jobs
    oldest_waiting: datetime | None  # enqueued_at of the oldest job not yet done
    worker_seen: datetime | None
    failed: list[JobRecord]

    @property
    def worker_running(self) -> bool:
        return self.worker_seen is not None and utcnow() - self.worker_seen < WORKER_GONE

    @property
    def stalled(self) -> bool:
        """Jobs wait and no worker runs: the admin should start one."""
        return not self.worker_running and (self.waiting > 0 or self.oldest_waiting is not None)


def queue_state(app: App, db: Session) -> QueueState:
    queue = get_queue(app)
    oldest = db.scalar(
        select(func.min(JobRecord.enqueued_at)).where(JobRecord.state.in_(("waiting", "running")))
    )
    failed = list(
        db.scalars(
            select(JobRecord)
            .where(JobRecord.state == "failed")
            .order_by(JobRecord.changed_at.desc())
            .limit(200)
        )
    )
    return QueueState(
        waiting=queue.pending_count(),
        scheduled=queue.scheduled_count(),
        oldest_waiting=oldest,
        worker_seen=db.scalar(select(func.max(WorkerRecord.seen_at))),
        failed=failed,
    )


# --- the worker -------------------------------------------------------------------------------


class Worker:
    """The consumer of one process: huey's threads and scheduler, our heartbeat and recovery."""

    def __init__(self, app: App, *, threads: int | None = None) -> None:
        self.app = app
        self.me = worker_id()
        self.consumer = get_queue(app).create_consumer(
            workers=threads or int(app.config.get("JOB_WORKERS") or 2),
            worker_type="thread",
            periodic=True,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=1.0,
            check_worker_health=True,
        )
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def start(self) -> None:
        """Start consuming in background threads (tests; `run` for the command)."""
        _WORKER_APP.append(self.app)
        heartbeat(get_database(self.app), self.me)
        recover(self.app)
        self._beat = threading.Thread(target=self._beating, name="heartbeat", daemon=True)
        self._beat.start()
        self.consumer.start()

    def run(self) -> None:
        """Consume until SIGINT or SIGTERM (`python main.py worker`)."""
        _WORKER_APP.append(self.app)
        heartbeat(get_database(self.app), self.me)
        recover(self.app)
        self._beat = threading.Thread(target=self._beating, name="heartbeat", daemon=True)
        self._beat.start()
        try:
            self.consumer.run()
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self.consumer.stop(graceful=True)
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self.app in _WORKER_APP:
            _WORKER_APP.remove(self.app)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                heartbeat(get_database(self.app), self.me)
            except Exception:  # the database is away a moment: the next beat tries again
                log.exception("worker heartbeat failed")


# --- jobs of the site itself ---------------------------------------------------------------


@job(periodic=crontab(minute="*"))
def recover_lost_jobs() -> None:
    """Every minute: send again the jobs of dead workers and those the queue never got."""
    recover(current_app())


@command("worker", "run the job worker (the queue's consumer) until stopped")
def worker_command(app: App, args: Any) -> int:
    huey_log = logging.getLogger("huey")
    huey_log.setLevel(str(app.config.get("LOG_LEVEL", "INFO")).upper())
    for handler in logging.getLogger("pyproject").handlers:
        huey_log.addHandler(handler)  # the consumer's lines beside the app's
    print(f"Job worker {worker_id()} on {app.config.get('QUEUE_URL') or 'the SQLite queue'}")
    Worker(app).run()
    return 0


# --- /admin/jobs ------------------------------------------------------------------------------

_JOB_ID = re.compile(r"[0-9a-f]{32}\Z")


def _job_id_or_404(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise NotFound("There is no such job.")
    return job_id


@admin_required
def admin_jobs(request: Request) -> str:
    """The queue at a glance: depth, oldest waiting job, the worker, the failed jobs."""
    app = current_app()
    state = queue_state(app, get_db(request))
    failed = [(row, json.loads(row.args)) for row in state.failed]
    return render_template("admin/jobs.html", state=state, failed=failed)


def _act_on_failed(
    request: Request, job_id: str, action: Callable[[Session, str], bool], done: str
) -> Response:
    """Retry or discard one failed job, then back to the list with what happened."""
    db = get_db(request)
    acted = action(db, _job_id_or_404(job_id))
    db.commit()
    if acted:
        flash(done, "success")
    else:
        flash("That job is no longer in the failed list.", "info")
    return redirect(url_for("admin_jobs"))


@admin_required
def retry_job(request: Request, job_id: str) -> Response:
    return _act_on_failed(request, job_id, retry_failed, "The job is queued again.")


@admin_required
def discard_job(request: Request, job_id: str) -> Response:
    return _act_on_failed(request, job_id, discard_failed, "The job is discarded.")


def register(app: App) -> None:
    app.add_route("/admin/jobs", admin_jobs)
    app.add_route("/admin/jobs/<job_id>/retry", retry_job, methods=["POST"])
    app.add_route("/admin/jobs/<job_id>/discard", discard_job, methods=["POST"])
