"""Shared fixtures: a real SQLite file per test, migrated with the real migrations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyproject import create_app
from pyproject.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient
from pyproject.migrate import upgrade

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_unavailable_reason() -> str | None:
    """Give why PostgreSQL cannot be used for tests, or None if it can."""
    try:
        import psycopg

        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=2):
            return None
    except Exception as error:  # any failure means: skip, and say why
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}".splitlines()[0]


_PG_REASON: list[str | None] = []


def _postgres_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(postgres_unavailable_reason())
    return _PG_REASON[0]


def reset_postgres() -> None:
    """Drop every table in the test database's public schema (a clean start)."""
    import psycopg

    url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
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
