"""Fixtures for the security tests: the World in process, and one real gunicorn for the session.

The gunicorn answers to an extra alias host (to show that absolute URLs never come from
Host), writes its temporary files to a folder of its own (to show none are left behind),
and has the same World as the in-process tests, built on its database through the forms.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blog.conftest import make_blog_app

from pyproject.blog.db import get_database
from pyproject.lib import App
from tests.e2e.conftest import LogWatch, start_gunicorn

from .live import Live
from .world import World, build_world

ALIAS = "alias.test"


@pytest.fixture(scope="module")
def world_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """A migrated app shared by one module's tests."""
    application = make_blog_app(tmp_path_factory.mktemp("world"))
    yield application
    get_database(application).dispose()


@pytest.fixture(scope="module")
def world(world_app: App) -> World:
    """The World (see world.py) on the module's app."""
    return build_world(world_app)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One gunicorn for every security test that goes over a socket, with a World on it."""
    data_dir = tmp_path_factory.mktemp("security-gunicorn")
    tmpdir = data_dir / "tmp"
    tmpdir.mkdir()
    server = start_gunicorn(
        {"ALLOWED_HOSTS": f"127.0.0.1,localhost,{ALIAS}", "TMPDIR": str(tmpdir)},
        workers=2,
        data_dir=data_dir,
    )
    seeder = None
    try:
        (data_dir / "seeder").mkdir()
        seeder = make_blog_app(data_dir / "seeder", server.env["DATABASE_URL"])
        yield Live(server, build_world(seeder), tmpdir, ALIAS)
    finally:
        if seeder is not None:
            get_database(seeder).dispose()
        server.stop()


@pytest.fixture
def live_log(live: Live) -> Iterator[LogWatch]:
    """Watch the live server's log during a test; fail it if a traceback was logged."""
    watch = LogWatch(live.server)
    yield watch
    logged = watch.new_text()
    if "Traceback" in logged:
        pytest.fail(f"the server logged a traceback during this test:\n{logged[-3000:]}")
