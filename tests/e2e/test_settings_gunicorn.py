"""Site settings end to end (#17): a change saved on one gunicorn worker shows on all at once.

Three workers each keep their own settings object and page cache. Readers load the home
page many times over fresh connections, so every worker answers (and keeps the old title
and accent); an admin saves new ones; from the very next request every answer, whichever
worker gives it, shows them: the settings are cached per content version, which the save
bumps in the database every worker reads.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ServerHandle, start_gunicorn
from tests.e2e.test_new_user_walk import Visitor

PASSPHRASE = "a long and lovely passphrase"
LOADS = 30  # each over a new connection: the workers take them in turn


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_gunicorn(data_dir=tmp_path_factory.mktemp("settings"), workers=3)
    yield handle
    handle.stop()


def home_titles_and_sheets(server: ServerHandle) -> tuple[set[str], set[str]]:
    """Load / over fresh connections: the <title>s and site stylesheets answered."""
    titles, sheets = set(), set()
    for _ in range(LOADS):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/")
        text = connection.getresponse().read().decode()
        connection.close()
        titles.add(re.search(r"<title>(.*?)</title>", text).group(1))
        sheets.add(re.search(r'href="(/site-style/[0-9a-f]+\.css)"', text).group(1))
    return titles, sheets


def test_a_settings_change_shows_on_every_worker_at_once(server: ServerHandle) -> None:
    admin = Visitor(server.url)
    setup = admin.open("/setup")
    admin.submit(
        setup,
        "main form",
        username="ada",
        email="ada@example.com",
        display_name="Ada",
        password=PASSPHRASE,
        confirm=PASSPHRASE,
    )
    titles, sheets = home_titles_and_sheets(server)
    assert titles == {"PyProject"}
    assert len(sheets) == 1

    settings = admin.open("/admin/settings")
    saved = admin.submit(
        settings, "#settings-form", title="Field Notes", accent="#0b5d1e", language="fr"
    )
    assert saved.status == 200 and saved.url.endswith("/admin/settings")
    assert "Saved:" in saved.text

    titles, new_sheets = home_titles_and_sheets(server)
    assert titles == {"Field Notes"}  # no worker answers with the old title
    assert len(new_sheets) == 1 and new_sheets != sheets
    sheet = admin.open(next(iter(new_sheets)))
    assert sheet.status == 200 and "--accent: #0b5d1e" in sheet.text
    assert 'lang="fr"' in admin.open("/").text
