"""Reliability fixtures: a real gunicorn with four workers on SQLite, then on PostgreSQL.

The servers come from the end-to-end fixtures (`start_gunicorn`: `main.py prepare`, which
migrates the empty database, then `gunicorn main:app` with every setting explicit).

On PostgreSQL each test starts from an empty database (`reset_postgres()` empties this
run's own one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, _postgres_reason, reset_postgres
from tests.e2e.conftest import (
    ROOT,
    START_TIMEOUT,
    VENV_BIN,
    ServerHandle,
    _is_ready,
    _kill_group,
    _wait_group_gone,
    start_gunicorn,
)
from tests.reliability.support import Client, set_up_admin

WORKERS = 4


@dataclass
class Blog:
    """A running blog: its database URL, its server (replaced by a restart), its admin."""

    kind: str
    url: str
    servers: list[ServerHandle]
    admin: Client | None = None
    restarts: int = field(default=0)

    @property
    def server(self) -> ServerHandle:
        return self.servers[-1]

    @property
    def port(self) -> int:
        return self.server.port

    def stderr_text(self) -> str:
        """Give what every server of this blog (before and after restarts) wrote to stderr."""
        return "".join(server.stderr_text() for server in self.servers)

    def kill(self) -> None:
        """SIGKILL the gunicorn master and all its workers at once, and wait until gone."""
        _kill_group(self.server.pid)
        self.server.process.wait(10)
        left = _wait_group_gone(self.server.pid, 10.0)
        assert not left, f"processes left after SIGKILL: {left}"

    def restart(self) -> ServerHandle:
        """Start gunicorn again on the same port and database; give it once it answers."""
        old = self.server
        self.restarts += 1
        stderr_path = old.data_dir / f"gunicorn-{old.port}-restart-{self.restarts}.stderr"
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "main:app"],
                cwd=ROOT,
                env=old.env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        handle = ServerHandle(
            url=old.url,
            port=old.port,
            process=process,
            stderr_path=stderr_path,
            env=old.env,
            data_dir=old.data_dir,
        )
        self.servers.append(handle)
        deadline = time.monotonic() + START_TIMEOUT
        while not _is_ready(old.port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not restart on {old.url}:\n{handle.stderr_text()}")
            time.sleep(0.05)
        return handle

    def reload(self) -> None:
        """Ask the master for a graceful reload (SIGHUP): new workers, old ones finish."""
        os.kill(self.server.pid, signal.SIGHUP)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Blog]:
    """A gunicorn with four workers on a fresh database, its admin set up through /setup."""
    if request.param == "postgres":
        reason = _postgres_reason()
        if reason:
            pytest.skip(reason)
        reset_postgres()
        url = POSTGRES_URL
    else:
        url = f"sqlite:///{tmp_path / 'reliability.sqlite3'}"
    server = start_gunicorn({"DATABASE_URL": url}, WORKERS, data_dir=tmp_path / "srv")
    site = Blog(request.param, url, [server])
    try:
        site.admin = set_up_admin(server.port)
        yield site
    finally:
        for handle in site.servers:
            handle.stop()
