"""Applying and checking Alembic migrations from the app (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from pyproject.config import ROOT


def alembic_config(url: str) -> Config:
    """Give an Alembic Config pointing at migrations/ and the database `url`."""
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration (up to `revision`)."""
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Undo migrations down to `revision`."""
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, action, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # SQLite rebuilds a table to alter it; with foreign keys on, dropping the old
            # copy would cascade into the rows that point at it. Off while migrating
            # (it only changes outside a transaction), checked and back on afterwards.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                action(config, revision)
                if sqlite:
                    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if problems:
                        raise RuntimeError(f"migration broke foreign keys: {problems[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """Give the revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """Give the newest revision in migrations/."""
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    return script.get_current_head()


def behind_message(engine: Engine) -> str | None:
    """Give a message naming the command to run if the database is behind the code."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return None
    return (
        f"The database is at migration {current or 'none (empty database)'} but the code "
        f"needs {head}: run `python main.py migrate` (make run does it), then restart."
    )
