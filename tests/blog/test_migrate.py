"""Tests for pyproject/blog/migrate.py: applying and checking migrations from the app.

Going up to head and back down to base, on SQLite and PostgreSQL, and that the migrated
schema matches the models, are in tests/blog/test_storage.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect

from pyproject.blog.migrate import (
    alembic_config,
    behind_message,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from pyproject.config import ROOT

VERSIONS = ROOT / "migrations" / "versions"


def newest_revision() -> str:
    """Give the revision named by the newest file in migrations/versions."""
    return max(re.match(r"\d+", path.name).group() for path in VERSIONS.glob("[0-9]*.py"))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty SQLite file."""
    made = create_engine(f"sqlite:///{tmp_path / 'migrate.sqlite3'}")
    yield made
    made.dispose()


def test_an_empty_database_is_at_no_revision_and_says_what_to_run(engine: Engine):
    assert current_revision(engine) is None
    message = behind_message(engine)

    assert message is not None
    assert "none (empty database)" in message
    assert f"needs {newest_revision()}" in message
    assert "python main.py migrate" in message


def test_head_is_the_newest_migration_file(engine: Engine):
    assert head_revision(engine) == newest_revision()


def test_upgrading_to_a_revision_stops_there_and_the_message_names_it(engine: Engine):
    upgrade(engine, "0002")

    assert current_revision(engine) == "0002"
    assert "at migration 0002 but the code needs" in behind_message(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"users", "posts", "revisions"} <= tables
    assert "post_views" not in tables  # made by 0005


def test_a_database_at_head_is_not_behind(engine: Engine):
    upgrade(engine)

    assert current_revision(engine) == head_revision(engine)
    assert behind_message(engine) is None


def test_upgrading_twice_changes_nothing(engine: Engine):
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())

    upgrade(engine)

    assert set(inspect(engine).get_table_names()) == tables
    assert current_revision(engine) == newest_revision()


def test_downgrading_one_step_undoes_only_that_migration(engine: Engine):
    upgrade(engine, "0005")

    downgrade(engine, "0004")

    assert current_revision(engine) == "0004"
    assert "post_views" not in inspect(engine).get_table_names()


def test_sqlite_enforces_foreign_keys_again_after_migrating(engine: Engine):
    upgrade(engine)

    with engine.connect() as connection:
        # The pool hands back the connection the migration used.
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_alembic_config_needs_no_ini_file_and_keeps_percent_signs():
    url = "postgresql+psycopg://blog:p%40ss%25word@db.example/blog"

    config = alembic_config(url)

    assert config.config_file_name is None
    assert config.get_main_option("script_location") == str(ROOT / "migrations")
    assert config.get_main_option("sqlalchemy.url") == url
