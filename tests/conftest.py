"""Shared fixtures: a real SQLite file per test, migrated with the real migrations."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyproject.app import create_app
from pyproject.blog.db import get_database
from pyproject.blog.migrate import upgrade
from pyproject.lib import App
from pyproject.lib.testing import TestClient

# Where a PostgreSQL server is reachable (this machine has one with a database `test`),
# each test run works in a database of its own, made from that one and dropped at the
# end, so two runs at once (a developer's and CI's) never empty each other's tables.
BASE_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_RUN_DATABASE = f"pyproject_test_{os.getpid()}"
POSTGRES_URL = BASE_POSTGRES_URL.rsplit("/", 1)[0] + "/" + _RUN_DATABASE


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def postgres_unavailable_reason() -> str | None:
    """Give why PostgreSQL cannot be used for tests, or None (making this run's database)."""
    try:
        import psycopg

        with psycopg.connect(_plain(BASE_POSTGRES_URL), connect_timeout=2, autocommit=True) as c:
            exists = c.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (_RUN_DATABASE,)
            ).fetchone()
            if not exists:
                c.execute(f'CREATE DATABASE "{_RUN_DATABASE}"')
                atexit.register(_drop_run_database)
        return None
    except Exception as error:  # any failure means: skip, and say why
        return f"PostgreSQL at {BASE_POSTGRES_URL} is not reachable: {error}".splitlines()[0]


def _drop_run_database() -> None:
    try:
        import psycopg

        with psycopg.connect(_plain(BASE_POSTGRES_URL), connect_timeout=2, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{_RUN_DATABASE}" WITH (FORCE)')
    except Exception:  # best effort at exit
        pass


_PG_REASON: list[str | None] = []


def _postgres_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(postgres_unavailable_reason())
    return _PG_REASON[0]


def reset_postgres() -> None:
    """Drop every table in this run's database (a clean start)."""
    import psycopg

    if _postgres_reason():
        raise RuntimeError(_postgres_reason())
    with psycopg.connect(_plain(POSTGRES_URL), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def build_app(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> App:
    """Give a migrated app on its own SQLite file (or the given database)."""
    settings = {
        "SECRET_KEY": "test-secret-key",
        "DEBUG": False,
        "BASE_URL": "http://localhost",
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'test.sqlite3'}",
        "INSTANCE_PATH": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    app = create_app(settings)
    upgrade(get_database(app).engine)
    return app


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The app on SQLite, then on PostgreSQL (skipped, saying why, where none is reachable)."""
    if request.param == "postgres":
        reason = _postgres_reason()
        if reason:
            pytest.skip(reason)
        reset_postgres()
        app = build_app(tmp_path, POSTGRES_URL)
    else:
        app = build_app(tmp_path)
    yield app
    get_database(app).dispose()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The app on a fresh, migrated SQLite file."""
    application = build_app(tmp_path)
    yield application
    get_database(application).dispose()


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., App]:
    """Build an app with extra settings (on a fresh SQLite file)."""
    made: list[App] = []

    def factory(**overrides: Any) -> App:
        application = build_app(tmp_path, **overrides)
        made.append(application)
        return application

    yield factory
    for application in made:
        get_database(application).dispose()


@pytest.fixture
def client(app: App) -> TestClient:
    return app.test_client()


# --- one Chromium for the whole run (the browser and the security suites share it) ---------

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, headless; no background traffic to hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_unavailable_reason() -> str | None:
    """Give why browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"playwright cannot be imported ({error}): pip install -r requirements-dev.txt"
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """Playwright's driver, started once: its sync API allows one per process at a time."""
    reason = chromium_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """Debian's Chromium, headless, shared by the run (contexts keep tests apart)."""
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
    except Exception as error:  # a Chromium that does not start is a missing Chromium
        pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(error).splitlines()[0]}")
    yield chromium
    chromium.close()
