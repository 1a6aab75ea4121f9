"""Faults the tests cause on purpose, to see what a failing view shows: a read-only database."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from pyproject.blog.db import get_database
from pyproject.lib import App

# What must never reach a client: how the code is built, where it lives, what it runs on.
LEAKS = (
    "Traceback",
    'File "',
    "line ",
    ".py",
    "/work",
    "/usr/",
    "site-packages",
    "sqlite",
    "SQLite",
    "sqlalchemy",
    "SQLAlchemy",
    "OperationalError",
    "readonly",
    "read-only",
    "no such table",
    "UPDATE ",
    "INSERT ",
    "SELECT ",
    "Python",
    "gunicorn/",
    "Werkzeug",
    "pyproject.",
)


@contextlib.contextmanager
def read_only_database(app: App) -> Iterator[None]:
    """Make every new connection of the app's engine read-only (SQLite's query_only)."""
    engine = get_database(app).engine

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = 1")

    event.listen(engine, "connect", on_connect)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()


@contextlib.contextmanager
def hidden_table(database_file: Path, table: str) -> Iterator[None]:
    """Rename a table of a SQLite file for a while (for a server in another process)."""
    hidden = f"{table}_hidden_by_test"
    with contextlib.closing(sqlite3.connect(database_file, isolation_level=None)) as db:
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute(f'ALTER TABLE "{table}" RENAME TO "{hidden}"')
        try:
            yield
        finally:
            db.execute(f'ALTER TABLE "{hidden}" RENAME TO "{table}"')


@contextlib.contextmanager
def captured_errors() -> Iterator[list[logging.LogRecord]]:
    """Collect what the app logs at ERROR (its loggers do not propagate to the root)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.ERROR)
    logger = logging.getLogger("pyproject")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def leaks(text: str) -> list[str]:
    """Give the giveaways of a stack, a file, a query or a version found in `text`."""
    return [word for word in LEAKS if word in text]
