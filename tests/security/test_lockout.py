"""Lock-out: the known-device cookie lifts only the account-wide sign-in throttle, and only
when the site signed it, for that account, within the last year. Anything else (tampered,
forged with another key, another account's, expired, malformed) counts as no cookie.

Every row signs in to alice with a wrong password, from an address of its own, while a
stranger's failures hold alice's account: a cookie the site honours gets the ordinary 422,
any other gets 429 with Retry-After.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from blog.conftest import (
    AUTHOR,
    OTHER,
    add_login_attempts,
    create_author,
    form_of,
    login,
    make_blog_app,
    signup_admin,
    utc_ago,
)
from sqlalchemy import select

from pyproject.blog import auth
from pyproject.blog.db import get_database
from pyproject.blog.models import User
from pyproject.lib import App

SECRET = "test-secret-key"  # make_blog_app's SECRET_KEY
NAME = auth.KNOWN_DEVICE_COOKIE
YEAR = auth.KNOWN_DEVICE_MAX_AGE


def signed(payload: str, key: bytes) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def sign(payload: str, secret: str = SECRET) -> str:
    """Give a known-device cookie value for `payload`, signed as the site signs them."""
    key = hmac.new(
        secret.encode(), b"pyproject.blog.auth known-device cookie", hashlib.sha256
    ).digest()
    return signed(payload, key)


@dataclass
class Lockout:
    app: App
    alice: int  # user ids
    bob: int
    alices_cookie: str  # what alice's browser was given at sign-in
    bobs_cookie: str


@pytest.fixture(scope="module")
def lockout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lockout]:
    app = make_blog_app(tmp_path_factory.mktemp("lockout"))
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    cookies = {}
    for person in (AUTHOR, OTHER):
        created = create_author(admin, person.username, person.email, person.password)
        assert created.status_code == 303
        browser = app.test_client(environ_overrides={"REMOTE_ADDR": "192.0.2.1"})
        assert login(browser, person.username, person.password).status_code == 303
        cookies[person.username] = browser.cookies[NAME]
    with get_database(app).read() as db:
        ids = {name: id_ for name, id_ in db.execute(select(User.username, User.id))}
    yield Lockout(app, ids["alice"], ids["bob"], cookies["alice"], cookies["bob"])
    get_database(app).dispose()


@pytest.fixture
def alice_held(lockout: Lockout) -> Lockout:
    """Alice's account just after a stranger's twenty failures from another address."""
    account = f"user:{lockout.alice}"
    add_login_attempts(lockout.app, account, 20, utc_ago(seconds=0), address="203.0.113.66")
    return lockout


def try_alice(lockout: Lockout, address: str, cookie: str) -> int:
    """Give the status of a wrong-password sign-in to alice from `address` with `cookie`."""
    browser = lockout.app.test_client(environ_overrides={"REMOTE_ADDR": address})
    values = form_of(browser.get("/login"), 'form[action="/login"]')
    values.update(login=AUTHOR.username, password="wrong password")
    header = "; ".join(filter(None, [f"session={browser.cookies['session']}", cookie]))
    response = browser.post("/login", data=values, headers={"Cookie": header})
    set_cookies = response.headers.getlist("Set-Cookie")
    assert not any(NAME in c for c in set_cookies), "a failed sign-in set a known-device cookie"
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) > 0
    return response.status_code


Cookie = Callable[[Lockout], str]


def now() -> int:
    return int(time.time())


HONOURED: dict[str, Cookie] = {
    "as given at sign-in": lambda w: f"{NAME}={w.alices_cookie}",
    "signed a minute ago": lambda w: f"{NAME}={sign(f'{w.alice}:{now() - 60}')}",
    "364 days old": lambda w: f"{NAME}={sign(f'{w.alice}:{now() - YEAR + 86400}')}",
    "alice second, after bob": lambda w: f"{NAME}={sign(f'{w.bob}:{now()}~{w.alice}:{now()}')}",
}


def flip_last(value: str) -> str:
    return value[:-1] + ("A" if value[-1] != "A" else "B")


def payload_of(value: str) -> str:
    return value.rpartition(".")[0]


def signature_of(value: str) -> str:
    return value.rpartition(".")[2]


def later(payload: str) -> str:
    """Give a one-entry payload with its issue time a second later."""
    user_id, _, issued = payload.partition(":")
    return f"{user_id}:{int(issued) + 1}"


FORGED: dict[str, Cookie] = {
    "signature changed": lambda w: f"{NAME}={flip_last(w.alices_cookie)}",
    "signature cut short": lambda w: f"{NAME}={w.alices_cookie[:-4]}",
    "signature padded with =": lambda w: f"{NAME}={w.alices_cookie}=",
    "issue time changed": lambda w: (
        f"{NAME}={later(payload_of(w.alices_cookie))}.{signature_of(w.alices_cookie)}"
    ),
    "alice's id in bob's payload, bob's signature": lambda w: (
        f"{NAME}={payload_of(w.bobs_cookie).replace(str(w.bob), str(w.alice), 1)}"
        f".{signature_of(w.bobs_cookie)}"
    ),
    "alice added to bob's cookie": lambda w: f"{NAME}={w.alice}:{now()}~{w.bobs_cookie}",
    "bob's cookie": lambda w: f"{NAME}={w.bobs_cookie}",
    "signed with another site's key": lambda w: (
        f"{NAME}={sign(f'{w.alice}:{now()}', 'another-site-secret')}"
    ),
    "signed with SECRET_KEY itself, not the derived key": lambda w: (
        f"{NAME}={signed(f'{w.alice}:{now()}', SECRET.encode())}"
    ),
    "expired: issued a year and a day ago": lambda w: (
        f"{NAME}={sign(f'{w.alice}:{now() - YEAR - 86400}')}"
    ),
    "unsigned": lambda w: f"{NAME}={payload_of(w.alices_cookie)}",
    "signature alone": lambda w: f"{NAME}={signature_of(w.alices_cookie)}",
    "empty": lambda w: f"{NAME}=",
    "a dot": lambda w: f"{NAME}=.",
    "signed, but not numbers": lambda w: f"{NAME}={sign(f'alice:{now()}')}",
    "signed, negative id": lambda w: f"{NAME}={sign(f'-{w.alice}:{now()}')}",
    "signed, empty": lambda w: f"{NAME}={sign('')}",
    "10 KB": lambda w: f"{NAME}={w.alices_cookie}" + "A" * 10_000,
    "non-ASCII": lambda w: f"{NAME}={w.alices_cookie[:-1]}é",
    "under the __Host- name over http": lambda w: f"__Host-{NAME}={w.alices_cookie}",
    "name in capitals": lambda w: f"{NAME.upper()}={w.alices_cookie}",
    "bob's planted before alice's": lambda w: f"{NAME}={w.bobs_cookie}; {NAME}={w.alices_cookie}",
    "SQL": lambda w: f"{NAME}=' OR '1'='1",
}


@pytest.mark.parametrize("case", HONOURED)
def test_a_cookie_the_site_signed_for_the_account_lifts_the_account_throttle(
    alice_held: Lockout, case: str
) -> None:
    address = f"198.51.100.{list(HONOURED).index(case) + 1}"
    assert try_alice(alice_held, address, HONOURED[case](alice_held)) == 422


def test_without_a_cookie_the_account_is_held(alice_held: Lockout) -> None:
    assert try_alice(alice_held, "198.51.100.99", "") == 429


@pytest.mark.parametrize("case", FORGED)
def test_a_cookie_the_site_did_not_sign_for_the_account_changes_nothing(
    alice_held: Lockout, case: str
) -> None:
    address = f"198.51.101.{list(FORGED).index(case) + 1}"
    assert try_alice(alice_held, address, FORGED[case](alice_held)) == 429
