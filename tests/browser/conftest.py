"""Browser fixtures: Debian's Chromium driven by Playwright against a real gunicorn.

Each test module shares one `gunicorn main:app` on a fresh SQLite file whose admin was
made through the setup page (`blog`); a test that needs a blog with no account yet gets
its own (`new_site`). `browse` opens browser contexts that are watched (see
support.ContextWatch): a test ends with `browse.assert_clean()`. Screenshots go to
test-artifacts/screenshots/<flow>/, printed at the end of the run.

Where Playwright cannot be imported or Chromium is not installed, these tests skip and
say so; the accessibility tests also skip where node_modules cannot be installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import (
    AXE_SOURCE,
    ROOT,
    SCREENSHOTS,
    Blog,
    Browsing,
    Screens,
    create_admin,
    start_site,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.e2e.conftest import ServerHandle

_SCREENS: list[Screens] = []


@pytest.fixture
def new_site(browser: Browser, tmp_path: Path) -> Iterator[ServerHandle]:
    """Give a gunicorn serving a new blog (no account, no post) for this test alone."""
    handle = start_site(tmp_path / "site")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def blog(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    """Give a blog whose admin account was made through the setup page.

    Tests share it to keep the run short, so each writes posts with titles of its own
    and never signs the shared session out.
    """
    handle = start_site(tmp_path_factory.mktemp("blog"))
    try:
        context = browser.new_context(base_url=handle.url)
        create_admin(context.new_page(), "")
        state = context.storage_state()
        context.close()
        yield Blog(handle, state)
    finally:
        handle.stop()


@pytest.fixture
def browse(browser: Browser, blog: Blog) -> Iterator[Browsing]:
    """Give watched contexts on the module's shared blog."""
    browsing = Browsing(browser, blog.server, blog.author_state)
    yield browsing
    browsing.close()


@pytest.fixture
def browse_new_site(browser: Browser, new_site: ServerHandle) -> Iterator[Browsing]:
    """Give watched contexts on a new blog of this test's own."""
    browsing = Browsing(browser, new_site)
    yield browsing
    browsing.close()


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    """Give the screenshot saver of this test (its folder emptied first)."""
    name = request.node.name.removeprefix("test_").replace("[", "-").rstrip("]")
    folder = SCREENSHOTS / name
    shutil.rmtree(folder, ignore_errors=True)
    shots = Screens(folder)
    _SCREENS.append(shots)
    return shots


@pytest.fixture(scope="session")
def axe_source() -> str:
    """Give axe-core's source, running `npm ci` first when node_modules lacks it."""
    if not AXE_SOURCE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"{AXE_SOURCE.relative_to(ROOT)} is missing and npm is not installed")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not AXE_SOURCE.exists():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            pytest.skip(f"`npm ci` could not install axe-core (exit {done.returncode}): {tail}")
    return AXE_SOURCE.read_text(encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    saved = [path for shots in _SCREENS for path in shots.saved]
    if saved:
        folder = SCREENSHOTS.relative_to(ROOT)
        terminalreporter.write_line(
            f"Browser screenshots: {folder}/ ({len(saved)} files, light and dark, "
            "390x844 and 1280x900)"
        )
