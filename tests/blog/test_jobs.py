"""The job queue (pyproject/blog/jobs.py): huey's real consumer, on SQLite and on Redis.

Jobs come from tests/jobs_for_tests.py (the JOB_MODULES setting), and leave their effects
in files, so what ran, and how often, is seen from outside the worker. The worker runs
in process (its threads) or, to be killed mid-job, as `python main.py worker`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from blog.conftest import signup_admin
from pyproject.blog import jobs
from pyproject.blog.db import get_database
from pyproject.blog.models import JobRecord, Post, WorkerRecord, utcnow
from pyproject.lib import App
from tests import jobs_for_tests
from tests.conftest import build_app

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_unavailable_reason() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as error:  # any failure to reach it: skip, saying why
        return f"Redis at {REDIS_URL} is not reachable: {error}"
    return None


def settings(storage: str, tmp_path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {"JOB_MODULES": "tests.jobs_for_tests", "JOB_RETRY_SECONDS": 0.2}
    if storage == "redis":
        reason = redis_unavailable_reason()
        if reason:
            pytest.skip(reason)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()  # a database of the tests' own
        values["QUEUE_URL"] = REDIS_URL
    return values


@pytest.fixture(params=["sqlite", "redis"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The blog with its queue on SQLite, then on Redis (skipped where none is reachable)."""
    app = build_app(tmp_path, **settings(request.param, tmp_path))
    yield app
    get_database(app).dispose()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[App]:
    app = build_app(tmp_path, **settings("sqlite", tmp_path))
    yield app
    get_database(app).dispose()


@pytest.fixture
def worker(site: App) -> Iterator[jobs.Worker]:
    running = jobs.Worker(site, threads=2)
    running.start()
    yield running
    running.stop()


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def ledger(app: App) -> list[tuple[str, str, int]]:
    with get_database(app).read() as db:
        return [
            (row.name.rsplit(".", 1)[-1], row.state, row.attempts)
            for row in db.scalars(select(JobRecord).order_by(JobRecord.enqueued_at))
        ]


def enqueue(app: App, registered: jobs.Job, *args: Any) -> str:
    with get_database(app).write() as db:
        return jobs.enqueue(db, registered, *args)


# --- enqueueing ------------------------------------------------------------------------------


def test_a_job_runs_after_its_transaction_commits_and_leaves_no_record(
    site: App, worker: jobs.Worker, tmp_path: Path
) -> None:
    effect = tmp_path / "effect"
    enqueue(site, jobs_for_tests.note, str(effect), "hello")
    assert eventually(lambda: lines(effect) == ["hello"])
    assert eventually(lambda: ledger(site) == [])
    assert lines(Path(f"{effect}.runs")) == ["ran"]


def test_a_rolled_back_transaction_sends_no_job(site: App, tmp_path: Path) -> None:
    effect = tmp_path / "effect"
    with pytest.raises(RuntimeError), get_database(site).write() as db:
        jobs.enqueue(db, jobs_for_tests.note, str(effect), "never")
        raise RuntimeError("the save failed")
    with get_database(site).write() as db:  # a later commit of another session sends nothing
        db.add(WorkerRecord(id="someone:1", started_at=utcnow(), seen_at=utcnow()))
    assert jobs.get_queue(site).pending_count() == 0
    assert ledger(site) == []


def test_a_job_waits_in_the_queue_while_no_worker_runs(site: App, tmp_path: Path) -> None:
    effect = tmp_path / "effect"
    enqueue(site, jobs_for_tests.note, str(effect), "later")
    time.sleep(0.3)
    assert lines(effect) == []
    assert jobs.get_queue(site).pending_count() == 1
    with get_database(site).read() as db:
        state = jobs.queue_state(site, db)
    assert state.waiting == 1 and state.stalled and not state.worker_running
    running = jobs.Worker(site, threads=1)
    running.start()
    try:
        assert eventually(lambda: lines(effect) == ["later"])
        with get_database(site).read() as db:
            assert jobs.queue_state(site, db).worker_running
    finally:
        running.stop()


def test_arguments_must_be_ids_and_strings(site: App) -> None:
    with pytest.raises(TypeError), get_database(site).write() as db:
        jobs.enqueue(db, jobs_for_tests.note, object(), "x")


def test_scheduled_jobs_are_not_enqueued_by_hand(site: App) -> None:
    with pytest.raises(ValueError), get_database(site).write() as db:
        jobs.enqueue(db, jobs.recover_lost_jobs)


# --- retries and the failed list ---------------------------------------------------------------


def test_a_job_that_fails_then_works_is_retried_with_growing_waits(
    site: App, worker: jobs.Worker, tmp_path: Path
) -> None:
    effect = tmp_path / "effect"
    started = time.monotonic()
    enqueue(site, jobs_for_tests.fail_then_work, str(effect), 2)
    assert eventually(lambda: lines(effect) == ["done"], timeout=20)
    # Waits of 0.2 s then 0.4 s (JOB_RETRY_SECONDS doubled), behind the scheduler's tick.
    assert time.monotonic() - started >= 0.6
    assert lines(Path(f"{effect}.runs")) == ["ran"] * 3
    assert eventually(lambda: ledger(site) == [])


def test_a_job_whose_retries_run_out_is_listed_failed_with_its_error(
    site: App, worker: jobs.Worker, tmp_path: Path
) -> None:
    effect = tmp_path / "effect"
    job_id = enqueue(site, jobs_for_tests.refuse, str(effect))
    assert eventually(lambda: ledger(site) == [("refuse", "failed", 3)], timeout=20)
    assert lines(Path(f"{effect}.runs")) == ["ran"] * 3  # the first try and 2 retries
    with get_database(site).read() as db:
        row = db.get(JobRecord, job_id)
        assert "ConnectionRefusedError: the mail server refused" in row.error
        state = jobs.queue_state(site, db)
    assert [failed.id for failed in state.failed] == [job_id]


def test_admin_jobs_shows_the_queue_and_retries_or_discards_failed_jobs(
    sqlite_site: App, tmp_path: Path
) -> None:
    admin = sqlite_site.test_client()
    assert signup_admin(admin).status_code == 303
    effect = tmp_path / "effect"
    first = enqueue(sqlite_site, jobs_for_tests.refuse, str(effect))
    second = enqueue(sqlite_site, jobs_for_tests.refuse, str(effect))
    waiting = admin.get("/admin/jobs")
    assert waiting.status_code == 200
    assert "No job worker has been seen" in waiting.text  # jobs wait, no worker
    assert "Jobs are waiting and no job worker is running" in admin.get("/drafts").text
    running = jobs.Worker(sqlite_site, threads=2)
    running.start()
    try:
        assert eventually(
            lambda: [state for _, state, _ in ledger(sqlite_site)] == ["failed", "failed"],
            timeout=20,
        )
        page = admin.get("/admin/jobs")
        rows = page.html.select(".job-table tbody tr")
        assert len(rows) == 2
        assert "ConnectionRefusedError" in rows[0].get_text()
        assert str(effect) in rows[0].get_text()  # its arguments
        assert "No job worker has been seen" not in page.text

        form = page.html.select_one(f'form[action="/admin/jobs/{first}/discard"]')
        token = form.select_one("input[name=csrf_token]")["value"]
        assert (
            admin.post(f"/admin/jobs/{first}/discard", data={"csrf_token": token}).status_code
            == 303
        )
        assert [r[1] for r in ledger(sqlite_site)] == ["failed"]

        runs_before = len(lines(Path(f"{effect}.runs")))
        assert (
            admin.post(f"/admin/jobs/{second}/retry", data={"csrf_token": token}).status_code == 303
        )
        assert eventually(lambda: len(lines(Path(f"{effect}.runs"))) == runs_before + 3, timeout=20)
        assert eventually(lambda: ledger(sqlite_site) == [("refuse", "failed", 6)], timeout=20)
    finally:
        running.stop()


def test_admin_jobs_is_for_administrators_only(sqlite_site: App) -> None:
    from blog.conftest import create_author, login

    anonymous = sqlite_site.test_client()
    assert anonymous.get("/admin/jobs").status_code in (302, 303)
    admin = sqlite_site.test_client()
    assert signup_admin(admin).status_code == 303
    assert create_author(admin, "bob", password="bob's passphrase 1").status_code == 303
    author = sqlite_site.test_client()
    assert login(author, "bob", "bob's passphrase 1").status_code == 303
    assert author.get("/admin/jobs").status_code == 403
    token = admin.get("/admin/jobs").html.select_one("input[name=csrf_token]")
    assert admin.post("/admin/jobs/not-a-job/retry").status_code in (400, 403)  # no token
    if token is not None:
        data = {"csrf_token": token["value"]}
        assert admin.post("/admin/jobs/not-a-job/retry", data=data).status_code == 404


# --- a worker killed mid-job --------------------------------------------------------------------


def start_worker(app: App, tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": get_database(app).engine.url.render_as_string(hide_password=False),
        "INSTANCE_PATH": app.config["INSTANCE_PATH"],
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": "http://localhost",
        "LOG_LEVEL": "WARNING",
        "JOB_MODULES": "tests.jobs_for_tests",
        "JOB_RETRY_SECONDS": "1",
        "QUEUE_URL": str(app.config.get("QUEUE_URL") or ""),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "main.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_worker_killed_mid_job_is_replaced_and_the_job_runs_again_once(
    site: App, tmp_path: Path
) -> None:
    effect = tmp_path / "effect"
    log = tmp_path / "worker.log"
    enqueue(site, jobs_for_tests.slow_note, str(effect), "survived", 3.0)
    first = start_worker(site, tmp_path, log)
    try:
        assert eventually(lambda: Path(f"{effect}.started").exists(), 30), log.read_text()
        assert eventually(lambda: [s for _, s, _ in ledger(site)] == ["running"], 10)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert lines(effect) == []  # it died before the effect
        second = start_worker(site, tmp_path, log)
        try:
            assert eventually(lambda: lines(effect) == ["survived"], 30), log.read_text()
            assert eventually(lambda: ledger(site) == [], 10)
            time.sleep(0.5)
            assert lines(effect) == ["survived"]  # once, though it ran twice
            assert lines(Path(f"{effect}.runs")) == ["ran", "ran"]
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(15)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)


# --- the site's own jobs -------------------------------------------------------------------------


def test_the_trash_is_purged_by_a_periodic_job(sqlite_site: App) -> None:
    from blog.conftest import delete_post, make_cast, slug_of, write_post
    from pyproject.blog import trash

    assert trash.purge_trash_job.periodic is not None
    cast = make_cast(sqlite_site)
    slug = slug_of(write_post(cast.author, title="Old news"))
    delete_post(cast.author, slug)
    with get_database(sqlite_site).write() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        post.deleted_at = utcnow().replace(year=utcnow().year - 1)
    running = jobs.Worker(sqlite_site, threads=1)
    running.start()  # the job asks for the worker's app
    try:
        trash.purge_trash_job()
    finally:
        running.stop()
    with get_database(sqlite_site).read() as db:
        assert db.scalar(select(Post).where(Post.slug == slug)) is None


def test_a_job_the_queue_never_got_is_sent_by_recovery(sqlite_site: App, tmp_path: Path) -> None:
    """The process that committed died before handing the job over: the ledger has it."""
    effect = tmp_path / "effect"
    with get_database(sqlite_site).write() as db:
        job_id = jobs.enqueue(db, jobs_for_tests.note, str(effect), "found")
        db.info.pop("jobs_after_commit")  # as if the process died right after the commit
    assert jobs.get_queue(sqlite_site).pending_count() == 0
    assert jobs.recover(sqlite_site) == 0  # too young: it may still be on its way
    with get_database(sqlite_site).write() as db:
        db.get(JobRecord, job_id).enqueued_at = utcnow() - jobs.LOST_AFTER * 2
    assert jobs.recover(sqlite_site) == 1
    running = jobs.Worker(sqlite_site, threads=1)
    running.start()
    try:
        assert eventually(lambda: lines(effect) == ["found"])
    finally:
        running.stop()
