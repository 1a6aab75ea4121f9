"""Tests for pyproject/blog/twofactor.py: turning app codes on, signing in with a code or a
recovery code, replays, throttling, and turning it off."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from blog.conftest import AUTHOR, Cast, form_of, login, make_blog_app, make_cast
from pyproject.blog import auth, twofactor
from pyproject.blog.db import get_database
from pyproject.blog.models import RecoveryCode, SecondFactor, User, set_clock, utcnow
from pyproject.lib.testing import TestClient, TestResponse


@pytest.fixture
def cast(tmp_path: Path) -> Iterator[Cast]:
    app = make_blog_app(tmp_path)
    yield make_cast(app)
    get_database(app).dispose()


def secret_on(page: TestResponse) -> str:
    shown = page.html.select_one("main p code").get_text()
    return shown.replace(" ", "")


def turn_on(client: TestClient) -> tuple[str, list[str]]:
    """Turn app codes on for the signed-in author; give the secret and the recovery codes."""
    page = client.get("/account/security")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.html.select_one(".qr svg") is not None  # drawn here, no image to fetch
    secret = secret_on(page)
    values = form_of(page, 'form[action="/account/security/totp"]')
    values["code"] = pyotp.TOTP(secret).now()
    done = client.post("/account/security/totp", data=values)
    assert done.status_code == 200, done.text
    codes = [c.get_text() for c in done.html.select(".recovery-codes code")]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def user_id(cast: Cast, username: str) -> int:
    with get_database(cast.app).read() as db:
        return db.scalar(select(User.id).where(User.username == username))


def password_step(cast: Cast, client: TestClient | None = None) -> TestClient:
    client = client or cast.app.test_client()
    answer = login(client, AUTHOR.username, AUTHOR.password)
    assert answer.status_code == 303 and answer.location == "/login/code"
    return client


def send_code(client: TestClient, code: str) -> TestResponse:
    values = form_of(client.get("/login/code"), 'form[action="/login/code"]')
    values["code"] = code
    return client.post("/login/code", data=values)


def next_step_code(secret: str) -> str:
    """Give the app's code for the next time step: turning on used this step's, and a code
    is good once; one step ahead is still accepted (for clocks that drift)."""
    totp = pyotp.TOTP(secret)
    return totp.at(time.time() + totp.interval)


def test_turning_it_on_needs_a_code_for_the_secret_shown(cast: Cast) -> None:
    page = cast.author.get("/account/security")
    values = form_of(page, 'form[action="/account/security/totp"]')
    values["code"] = "000000" if pyotp.TOTP(secret_on(page)).now() != "000000" else "111111"
    wrong = cast.author.post("/account/security/totp", data=values)
    assert wrong.status_code == 422
    assert "does not match" in wrong.text
    with get_database(cast.app).read() as db:
        assert db.get(SecondFactor, user_id(cast, AUTHOR.username)) is None
    # The same secret is offered again (kept in the session until confirmed).
    assert secret_on(cast.author.get("/account/security")) == secret_on(page)


def test_signing_in_asks_for_the_code_after_the_password(cast: Cast) -> None:
    secret, _codes = turn_on(cast.author)
    client = password_step(cast)
    assert client.get("/drafts").status_code == 303  # not signed in by the password alone
    code_page = client.get("/login/code")
    assert code_page.status_code == 200
    assert code_page.html.select_one("#f-code")["autocomplete"] == "one-time-code"
    signed_in = send_code(client, next_step_code(secret))
    assert signed_in.status_code == 303
    assert client.get("/drafts").status_code == 200


def test_a_code_is_good_once_and_a_wrong_one_is_refused(cast: Cast) -> None:
    secret, _codes = turn_on(cast.author)
    code = next_step_code(secret)
    first = password_step(cast)
    assert send_code(first, code).status_code == 303
    second = password_step(cast)
    replayed = send_code(second, code)
    assert replayed.status_code == 422
    assert "used already" in replayed.text
    assert send_code(second, "12345").status_code == 422
    assert send_code(second, "abcdef").status_code == 422
    assert second.get("/drafts").status_code == 303


def test_each_recovery_code_works_once(cast: Cast) -> None:
    _secret, codes = turn_on(cast.author)
    client = password_step(cast)
    assert send_code(client, codes[0].upper()).status_code == 303  # as typed, any case
    again = password_step(cast)
    assert send_code(again, codes[0]).status_code == 422
    assert send_code(again, codes[1].replace("-", "")).status_code == 303
    with get_database(cast.app).read() as db:
        rows = db.scalars(select(RecoveryCode)).all()
    assert len(rows) == 10 and sum(row.used_at is not None for row in rows) == 2
    assert all(code not in {row.digest for row in rows} for code in codes)  # only HMACs


def test_wrong_codes_are_throttled_like_passwords(cast: Cast) -> None:
    turn_on(cast.author)
    client = password_step(cast)
    for _ in range(auth.PAIR_FREE_FAILURES):
        assert send_code(client, "000000").status_code in (422, 429)
    throttled = send_code(client, "000000")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_the_password_step_expires_and_cannot_be_skipped(cast: Cast) -> None:
    secret, _codes = turn_on(cast.author)
    stranger = cast.app.test_client()
    assert stranger.get("/login/code").status_code == 303  # no password step: back to sign-in
    client = password_step(cast)
    values = form_of(client.get("/login/code"), 'form[action="/login/code"]')
    values["code"] = next_step_code(secret)
    later = utcnow() + timedelta(seconds=twofactor.PENDING_SECONDS + 1)
    set_clock(lambda: later)
    try:
        late = client.post("/login/code", data=values)
    finally:
        set_clock(None)
    assert late.status_code == 303 and late.location.startswith("/login")
    assert client.get("/drafts").status_code == 303


def test_new_recovery_codes_and_turning_off_need_the_password(cast: Cast) -> None:
    _secret, codes = turn_on(cast.author)
    page = cast.author.get("/account/security")
    values = form_of(page, 'form[action="/account/security/recovery-codes"]')
    values["password"] = "not it"
    assert cast.author.post("/account/security/recovery-codes", data=values).status_code == 422
    values["password"] = AUTHOR.password
    renewed = cast.author.post("/account/security/recovery-codes", data=values)
    fresh = [c.get_text() for c in renewed.html.select(".recovery-codes code")]
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    client = password_step(cast)
    assert send_code(client, codes[2]).status_code == 422  # the old ones stopped working
    off = form_of(cast.author.get("/account/security"), 'form[action="/account/security/totp/off"]')
    off["password"] = "not it"
    assert cast.author.post("/account/security/totp/off", data=off).status_code == 422
    off["password"] = AUTHOR.password
    assert cast.author.post("/account/security/totp/off", data=off).status_code == 303
    assert login(cast.app.test_client(), AUTHOR.username, AUTHOR.password).location != "/login/code"


@pytest.mark.parametrize(
    "path",
    ["/account/security/totp", "/account/security/recovery-codes", "/account/security/totp/off"],
)
def test_the_forms_need_a_signed_in_author_and_the_csrf_token(cast: Cast, path: str) -> None:
    assert cast.anonymous.post(path, data={"code": "123456"}).status_code in (303, 403)
    refused = cast.author.post(path, data={"code": "123456", "password": AUTHOR.password})
    assert refused.status_code == 403
    with get_database(cast.app).read() as db:
        assert db.get(SecondFactor, user_id(cast, AUTHOR.username)) is None


def test_the_qr_code_is_inline_svg_without_script(cast: Cast) -> None:
    page = cast.author.get("/account/security")
    svg = page.html.select_one(".qr svg")
    assert svg["role"] == "img" and svg["aria-label"]
    assert not page.html.select(".qr script, .qr image, .qr [href]")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret_on(page))
