"""Sessions: the cookie's attributes, a new id at sign-in, dead ids after sign-out, and every
cookie the server did not issue (or no longer honours) is simply anonymous, never a 500.
"""

from __future__ import annotations

import secrets

import pytest
from blog.conftest import (
    ADMIN,
    AUTHOR,
    Person,
    create_author,
    csrf_token,
    login,
    logout,
    make_blog_app,
    signup_admin,
)
from sqlalchemy import func, select

from pyproject.blog.db import get_database
from pyproject.blog.models import SessionRecord, User
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

from .live import Live

SID_LENGTH = 43


def set_cookies(responses: list[TestResponse]) -> list[str]:
    return [value for r in responses for value in r.headers.getlist("Set-Cookie")]


def cookie_attributes(header: str) -> tuple[str, str, dict[str, str]]:
    """Give a Set-Cookie header's name, value and attributes (names lower-cased)."""
    pair, *parts = header.split(";")
    name, _, value = pair.strip().partition("=")
    attributes = {}
    for part in parts:
        key, _, val = part.strip().partition("=")
        attributes[key.lower()] = val
    return name, value, attributes


def is_signed_in(client: TestClient) -> bool:
    """Give whether the client's session is signed in (an author page answers it)."""
    response = client.get("/drafts")
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def sign_in_flow(client: TestClient) -> list[TestResponse]:
    """An anonymous visit, sign-in, a page, sign-out: every response that may set a cookie."""
    responses = [client.get("/login")]
    responses.append(login(client, AUTHOR.username, AUTHOR.password))
    responses.append(client.get("/drafts"))
    responses.append(logout(client))
    return responses


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> App:
    """An admin and alice, on http://localhost."""
    app = make_blog_app(tmp_path_factory.mktemp("sessions"))
    admin = app.test_client()
    signup_admin(admin)
    create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password)
    yield app
    get_database(app).dispose()


@pytest.fixture
def alice(blog: App) -> TestClient:
    client = blog.test_client()
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303
    return client


# --- the cookie itself -----------------------------------------------------------------------


def test_session_cookie_is_httponly_samesite_and_site_wide(blog: App) -> None:
    headers = set_cookies(sign_in_flow(blog.test_client()))
    assert headers, "no session cookie was ever set"
    for header in headers:
        name, _, attributes = cookie_attributes(header)
        assert name in ("session", "known_device"), header
        assert "httponly" in attributes, header
        assert attributes.get("samesite", "").lower() in ("lax", "strict"), header
        assert attributes.get("path") == "/", header
        assert "domain" not in attributes, header


def test_over_https_the_cookie_is_secure_and_host_prefixed(tmp_path) -> None:
    from tests.conftest import build_app

    app = build_app(tmp_path, BASE_URL="https://localhost")
    try:
        admin = app.test_client(base_url="https://localhost")
        assert signup_admin(admin).status_code == 303
        create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password)
        responses = sign_in_flow(app.test_client(base_url="https://localhost"))
        headers = set_cookies(responses)
        assert headers
        for header in headers:
            name, _, attributes = cookie_attributes(header)
            assert name in ("__Host-session", "__Host-known_device"), header
            assert "secure" in attributes, header
            assert "httponly" in attributes, header
            assert attributes.get("path") == "/", header
            assert "domain" not in attributes, header
        assert responses[0].headers.get("Strict-Transport-Security")
    finally:
        get_database(app).dispose()


# --- ids change when privileges do -----------------------------------------------------------


@pytest.mark.parametrize("planted", [False, True], ids=["issued by the site", "planted"])
def test_sign_in_issues_a_new_id_and_the_old_one_stays_anonymous(blog: App, planted) -> None:
    client = blog.test_client()
    if planted:  # session fixation: an id the attacker chose, set before the visit
        client.cookies["session"] = secrets.token_urlsafe(32)
    client.get("/login")
    before = client.cookies["session"]
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303
    after = client.cookies["session"]
    assert after != before
    assert is_signed_in(client)
    attacker = blog.test_client()
    attacker.cookies["session"] = before
    assert not is_signed_in(attacker)


def test_sign_in_issues_a_new_csrf_token(blog: App) -> None:
    client = blog.test_client()
    before = csrf_token(client, "/login")
    assert login(client, AUTHOR.username, AUTHOR.password).status_code == 303
    assert csrf_token(client) != before
    response = client.post("/account", data={"csrf_token": before, "bio": "planted"})
    assert response.status_code == 403


def test_after_sign_out_the_old_cookie_is_anonymous(blog: App, alice: TestClient) -> None:
    stolen = alice.cookies["session"]
    assert logout(alice).status_code == 303
    thief = blog.test_client()
    thief.cookies["session"] = stolen
    assert not is_signed_in(thief)
    assert not is_signed_in(alice)


BAD_COOKIES = {
    "tampered": lambda sid: "session=" + sid[:-1] + ("A" if sid[-1] != "A" else "B"),
    "truncated": lambda sid: "session=" + sid[:-5],
    "extended": lambda sid: "session=" + sid + "AAAA",
    "unknown, well-formed": lambda sid: "session=" + secrets.token_urlsafe(32),
    "duplicated": lambda sid: f"session={sid}; session={sid}",
    "duplicated, planted first": lambda sid: f"session={secrets.token_urlsafe(32)}; session={sid}",
    "duplicated, planted last": lambda sid: f"session={sid}; session={secrets.token_urlsafe(32)}",
    "empty": lambda sid: "session=",
    "quoted": lambda sid: f'session="{sid}"x',
    "spaces inside": lambda sid: f"session={sid[:20]} {sid[20:]}",
    "name in capitals": lambda sid: f"SESSION={sid}",
    "__Host- name over http": lambda sid: f"__Host-session={sid}",
    "NUL inside": lambda sid: f"session={sid[:20]}\x00{sid[21:]}",
    "non-ASCII": lambda sid: f"session={sid[:-1]}é",
    "invalid UTF-8": lambda sid: "session=" + sid[:-2] + "\xff\xfe",
    "10 KB": lambda sid: "session=" + "A" * 10_000,
    "a thousand pairs": lambda sid: "; ".join(f"c{i}={i}" for i in range(1000)),
    "no equals sign": lambda sid: "session",
    "semicolons only": lambda sid: ";;;;",
    "path traversal": lambda sid: "session=../../etc/passwd",
    "SQL": lambda sid: "session=' OR '1'='1",
}


@pytest.mark.parametrize("case", BAD_COOKIES)
def test_a_cookie_we_did_not_issue_is_anonymous(blog: App, alice: TestClient, case: str) -> None:
    header = BAD_COOKIES[case](alice.cookies["session"])
    token = csrf_token(alice)
    stranger = blog.test_client()  # its own jar: the server may tell it to drop the cookie
    for path in ("/", "/drafts", "/account", "/posts/new"):
        response = stranger.get(path, headers={"Cookie": header})
        assert response.status_code in (200, 303), f"{path}: {response.status_code}"
        if path == "/":
            assert response.html.select_one('form[action="/logout"]') is None
        else:
            assert response.status_code == 303
            assert response.location.startswith("/login?next=")
    response = stranger.post(
        "/account", data={"csrf_token": token, "bio": "x"}, headers={"Cookie": header}
    )
    assert response.status_code == 403
    assert is_signed_in(alice)  # the real cookie still works


def test_a_deactivated_authors_sessions_stop_at_once(blog: App) -> None:
    admin = blog.test_client()
    assert login(admin, ADMIN.username, ADMIN.password).status_code == 303
    person = Person("mallory", "mallory@example.com", "mallory passphrase 1")
    create_author(admin, person.username, person.email, person.password)
    laptop, phone = blog.test_client(), blog.test_client()
    for device in (laptop, phone):
        assert login(device, person.username, person.password).status_code == 303
        assert is_signed_in(device)
    token = csrf_token(laptop)
    with get_database(blog).read() as db:
        user_id = db.scalar(select(User.id).where(User.username == person.username))
    admin_token = csrf_token(admin, "/admin/users")
    response = admin.post(f"/admin/users/{user_id}/deactivate", data={"csrf_token": admin_token})
    assert response.status_code == 303
    assert not is_signed_in(laptop)
    assert not is_signed_in(phone)
    response = laptop.post("/account", data={"csrf_token": token, "bio": "still here"})
    assert response.status_code in (303, 403)
    with get_database(blog).read() as db:
        live_sessions = db.scalar(
            select(func.count()).select_from(SessionRecord).where(SessionRecord.user_id == user_id)
        )
        assert live_sessions == 0
        assert db.scalar(select(User.bio).where(User.id == user_id)) == ""
    assert login(blog.test_client(), person.username, person.password).status_code == 422
    response = admin.post(f"/admin/users/{user_id}/activate", data={"csrf_token": admin_token})
    assert response.status_code == 303
    assert not is_signed_in(laptop), "reactivation brought an old session back"


def test_a_password_change_ends_the_other_sessions(blog: App) -> None:
    admin = blog.test_client()
    assert login(admin, ADMIN.username, ADMIN.password).status_code == 303
    person = Person("trent", "trent@example.com", "trent passphrase 1")
    create_author(admin, person.username, person.email, person.password)
    here, elsewhere = blog.test_client(), blog.test_client()
    for device in (here, elsewhere):
        assert login(device, person.username, person.password).status_code == 303
    new = "trent passphrase 2"
    response = here.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(here),
            "current_password": person.password,
            "password": new,
            "confirm": new,
        },
    )
    assert response.status_code == 303
    assert is_signed_in(here)
    assert not is_signed_in(elsewhere)


# --- over a real gunicorn ---------------------------------------------------------------------


@pytest.mark.slow
def test_gunicorn_sets_the_cookie_with_its_attributes(live: Live, live_log) -> None:
    response = live.client().get("/login")
    headers = response.header_list("Set-Cookie")
    assert headers
    for header in headers:
        name, value, attributes = cookie_attributes(header)
        assert name == "session" and len(value) == SID_LENGTH, header
        assert "httponly" in attributes and attributes.get("path") == "/", header
        assert attributes.get("samesite", "").lower() in ("lax", "strict"), header


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_COOKIES)
def test_gunicorn_treats_a_foreign_cookie_as_anonymous(live: Live, live_log, case: str) -> None:
    admin_sid = live.world.clients["admin"].cookies["session"]
    header = BAD_COOKIES[case](admin_sid)
    response = live.raw(live.get_raw("/drafts", extra=f"Cookie: {header}\r\n"))
    # 400 and 431 where gunicorn itself refuses the header (a NUL, 10 KB): no app sees it.
    assert response.status in (303, 400, 431), response.status
    if response.status == 303:
        assert response.header("location").startswith("/login?next=")
    assert live.client("admin").get("/drafts").status == 200
