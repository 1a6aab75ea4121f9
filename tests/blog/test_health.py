"""Tests for pyproject/blog/health.py: /healthz answers while the process runs, /readyz only
while the database and the job queue answer in time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blog.conftest import make_blog_app
from pyproject.app import create_app
from pyproject.blog.db import get_database
from pyproject.lib import App


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    application = make_blog_app(tmp_path_factory.mktemp("health"))
    yield application
    get_database(application).dispose()


def test_healthz_answers_ok_and_is_never_kept(app: App) -> None:
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Type"].startswith("application/json")


def test_readyz_answers_ok_when_the_database_and_queue_answer(app: App) -> None:
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200
    assert answer.json == {"status": "ok", "database": "ok", "queue": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_probe_is_never_served_from_the_page_cache(app: App) -> None:
    client = app.test_client()
    for _ in range(3):  # a page the cache would keep is kept after its first answers
        assert client.get("/healthz").headers.get("X-Page-Cache") is None
        assert "ETag" not in client.get("/readyz").headers


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_readyz_is_503_with_the_reason_when_the_queue_is_down(tmp_path: Path) -> None:
    app = make_blog_app(tmp_path, overrides={"QUEUE_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    try:
        answer = app.test_client().get("/readyz")
        assert answer.status_code == 503
        assert answer.json["status"] == "unavailable"
        assert answer.json["database"] == "ok"
        assert answer.json["queue"].startswith("unavailable (")
        assert "127.0.0.1" not in answer.text  # the reason names no address or secret
        # The process itself is still alive: a balancer must not restart it for this.
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        get_database(app).dispose()


def test_readyz_gives_up_on_a_check_that_hangs(tmp_path: Path, silent_server: int) -> None:
    app = make_blog_app(
        tmp_path,
        overrides={"QUEUE_URL": f"redis://127.0.0.1:{silent_server}/0", "READY_TIMEOUT": "0.5"},
    )
    try:
        started = time.monotonic()
        answer = app.test_client().get("/readyz")
        took = time.monotonic() - started
        assert answer.status_code == 503
        assert answer.json["queue"] == "no answer within 0.5 s"
        assert took < 5  # the probe waited for its timeout, not for the hung server
    finally:
        get_database(app).dispose()


def test_readyz_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test?connect_timeout=1"
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp_path),
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        answer = app.test_client().get("/readyz")
        assert answer.status_code == 503
        assert answer.json["database"].startswith(("unavailable (", "no answer within"))
        assert "postgres" not in answer.text
    finally:
        get_database(app).dispose()


def test_a_bad_ready_timeout_is_refused_naming_it(tmp_path: Path) -> None:
    from pyproject.config import ConfigError

    with pytest.raises(ConfigError, match="READY_TIMEOUT"):
        make_blog_app(tmp_path, overrides={"READY_TIMEOUT": "soon"})
