"""Tests for pyproject/blog/devices.py: the account's sessions listed as devices, each of
which can be signed out, and "sign out everywhere else"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blog.conftest import AUTHOR, OTHER, Cast, csrf_token, login, make_blog_app, make_cast
from pyproject.blog.db import get_database
from pyproject.blog.devices import describe, network_of
from pyproject.lib.testing import TestClient

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def cast(tmp_path: Path) -> Iterator[Cast]:
    app = make_blog_app(tmp_path)
    yield make_cast(app)
    get_database(app).dispose()


def signed_in(cast: Cast, agent: str, address: str) -> TestClient:
    client = cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": address, "HTTP_USER_AGENT": agent}
    )
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303
    return client


def device_rows(client: TestClient) -> list[list[str]]:
    page = client.get("/account/security")
    assert page.status_code == 200
    return [
        [cell.get_text(" ", strip=True) for cell in row.select("td")[:2]]
        for row in page.html.select("table.devices tbody tr")
    ]


def test_the_page_lists_where_the_account_is_signed_in(cast: Cast) -> None:
    laptop = signed_in(cast, FIREFOX, "192.0.2.77")
    signed_in(cast, IPHONE, "2001:db8:5:6::9")
    rows = device_rows(laptop)
    assert rows[0] == ["Firefox on Linux (this device)", "192.0.2.0/24"]
    assert ["Safari on iOS", "2001:db8:5::/48"] in rows
    # The fixture's own signed-in browser is there too; bob's sessions are not.
    assert len(rows) == 3
    page = laptop.get("/account/security").text
    assert "192.0.2.77" not in page and "2001:db8:5:6::9" not in page  # networks, not people


def test_one_device_is_signed_out_and_the_others_stay(cast: Cast) -> None:
    laptop = signed_in(cast, FIREFOX, "192.0.2.77")
    phone = signed_in(cast, IPHONE, "198.51.100.4")
    page = laptop.get("/account/security")
    row = next(r for r in page.html.select("table.devices tbody tr") if "iOS" in r.get_text())
    action = row.select_one("form")["action"]
    done = laptop.post(action, data={"csrf_token": csrf_token(laptop)})
    assert done.status_code == 303
    assert phone.get("/drafts").status_code == 303  # signed out: sent to sign in
    assert laptop.get("/drafts").status_code == 200
    assert laptop.post(action, data={"csrf_token": csrf_token(laptop)}).status_code == 404


def test_sign_out_everywhere_else_keeps_only_this_device(cast: Cast) -> None:
    laptop = signed_in(cast, FIREFOX, "192.0.2.77")
    phone = signed_in(cast, IPHONE, "198.51.100.4")
    answer = laptop.post("/account/sessions/end-others", data={"csrf_token": csrf_token(laptop)})
    assert answer.status_code == 303
    assert phone.get("/drafts").status_code == 303
    assert cast.author.get("/drafts").status_code == 303  # the fixture's browser too
    assert laptop.get("/drafts").status_code == 200
    assert [r[0] for r in device_rows(laptop)] == ["Firefox on Linux (this device)"]
    assert cast.other.get("/drafts").status_code == 200  # bob is not touched


def test_signing_out_this_device_from_the_list_signs_it_out(cast: Cast) -> None:
    laptop = signed_in(cast, FIREFOX, "192.0.2.77")
    page = laptop.get("/account/security")
    row = next(r for r in page.html.select("table.devices tbody tr") if "this device" in r.text)
    assert laptop.post(row.select_one("form")["action"], data={"csrf_token": csrf_token(laptop)})
    assert laptop.get("/drafts").status_code == 303


def test_another_accounts_session_cannot_be_signed_out(cast: Cast) -> None:
    bobs = cast.app.test_client(environ_overrides={"HTTP_USER_AGENT": IPHONE})
    assert login(bobs, OTHER.username, OTHER.password).status_code == 303
    bob_page = bobs.get("/account/security")
    bob_action = bob_page.html.select_one("table.devices tbody tr form")["action"]
    token = csrf_token(cast.author)
    assert cast.author.post(bob_action, data={"csrf_token": token}).status_code == 404
    assert bobs.get("/drafts").status_code == 200
    assert (
        cast.author.post("/account/sessions/zz/end", data={"csrf_token": token}).status_code == 404
    )


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        (FIREFOX, "Firefox on Linux"),
        (IPHONE, "Safari on iOS"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/126.0 Safari/537.36 Edg/126.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/126.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("<script>alert(1)</script>", "Unknown browser"),
    ],
)
def test_user_agents_are_read_into_words(agent: str, words: str) -> None:
    assert describe(agent) == words


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("2001:db8:5:6::9", "2001:db8:5::/48"),
        ("not an address", "unknown"),
        ("", "unknown"),
    ],
)
def test_addresses_are_kept_only_as_their_network(address: str, network: str) -> None:
    assert network_of(address) == network
