"""Hostile input to the second factors, reviews and the audit log (#20).

Codes: wrong, expired, from the future, reused, in other scripts' digits, too long, with
control characters: each is a 422 (never a 500) that signs nobody in. Passkeys: garbled
answers are in tests/blog/test_passkeys.py; replayed and cloned assertions there and in
tests/browser/test_browser_passkeys.py. Text: the XSS corpus through the audit log (as
typed logins), review notes and passkey names runs no script on any page that shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pyotp
import pytest
from blog.conftest import (
    AUTHOR,
    Cast,
    create_author,
    csrf_token,
    form_of,
    login,
    make_blog_app,
    make_cast,
    slug_of,
    write_post,
)
from blog.test_passkeys import SoftAuthenticator, registration_options
from blog.test_twofactor import turn_on
from sqlalchemy import select

from pyproject.blog.db import get_database
from pyproject.blog.models import Post
from pyproject.lib.testing import TestClient, TestResponse

from .checks import CORPUS_FILE, CORPUS_MISSING, chunked, load_corpus, script_problems


@pytest.fixture(scope="module")
def cast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    app = make_blog_app(tmp_path_factory.mktemp("second-factors"))
    yield make_cast(app)
    get_database(app).dispose()


@pytest.fixture(scope="module")
def secret(cast: Cast) -> str:
    secret, _codes = turn_on(cast.author)
    return secret


def password_step(cast: Cast) -> TestClient:
    client = cast.app.test_client()
    assert login(client, AUTHOR.username, AUTHOR.password).location == "/login/code"
    return client


def send(client: TestClient, code: str) -> TestResponse:
    values = form_of(client.get("/login/code"), 'form[action="/login/code"]')
    values["code"] = code
    return client.post("/login/code", data=values)


def hostile_codes(secret: str) -> dict[str, str]:
    totp, now = pyotp.TOTP(secret), time.time()
    return {
        "wrong": "000000" if totp.now() != "000000" else "999999",
        "expired (three steps ago)": totp.at(now - 90),
        "from the future (three steps on)": totp.at(now + 90),
        "full-width digits": "".join(chr(0xFF10 + int(d)) for d in totp.now()),
        "Arabic-Indic digits": "".join(chr(0x0660 + int(d)) for d in totp.now()),
        "too long": "1" * 5000,
        "with a NUL": totp.now()[:3] + "\x00" + totp.now()[3:],
        "empty": "",
        "spaces": "      ",
        "a recovery code's shape": "abcde-fghij",
    }


CODE_CASES = tuple(hostile_codes(pyotp.random_base32()))


@pytest.mark.parametrize("case", CODE_CASES)
def test_a_hostile_code_is_refused_without_signing_in(cast: Cast, secret: str, case: str) -> None:
    client = password_step(cast)
    code = hostile_codes(secret)[case]
    if case.startswith(("expired", "from the future")) and code == pyotp.TOTP(secret).now():
        pytest.skip("the three-steps-away code happens to equal the current one")
    answer = send(client, code)
    assert answer.status_code == 422, answer.status_code
    assert client.get("/drafts").status_code == 303


def test_a_reused_code_is_refused(cast: Cast, secret: str) -> None:
    totp = pyotp.TOTP(secret)
    code = totp.at(time.time() + 30)  # the next step's: no earlier test used it
    assert send(password_step(cast), code).status_code == 303
    again = password_step(cast)
    assert send(again, code).status_code == 422
    assert again.get("/drafts").status_code == 303


@pytest.mark.parametrize("code", ["１２３４５６", "٣٣٣٣٣٣", "x" * 3000, "12\x0034"])
def test_turning_codes_on_with_a_hostile_code_is_422(cast: Cast, code: str) -> None:
    page = cast.other.get("/account/security")
    values = form_of(page, 'form[action="/account/security/totp"]')
    values["code"] = code
    assert cast.other.post("/account/security/totp", data=values).status_code == 422


# --- the XSS corpus through the new places text is shown ----------------------------------

needs_corpus = pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING)


def routable(cast: Cast):
    return lambda path: bool(cast.app.router.allowed_methods(path))


def problems_of(cast: Cast, label: str, response: TestResponse, statuses=(200,)) -> list[str]:
    if response.status_code not in statuses:
        return [f"{label}: status {response.status_code}"]
    return [f"{label}: {p}" for p in script_problems(response.data, routable=routable(cast))]


@needs_corpus
def test_review_notes_are_shown_without_script(cast: Cast) -> None:
    password = "contributor passphrase 1"
    assert (
        create_author(cast.admin, "xss-carl", password=password, role="contributor").status_code
        == 303
    )
    carl = cast.app.test_client()
    assert login(carl, "xss-carl", password).status_code == 303
    found: list[str] = []
    for i, chunk in enumerate(chunked(load_corpus(), 150)):
        slug = slug_of(write_post(carl, title=f"Note {i}", status="published"))
        with get_database(cast.app).read() as db:
            post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        values = form_of(
            cast.admin.get(f"/review/{post_id}"), f'form[action="/review/{post_id}/approve"]'
        )
        values["note"] = "\n".join(chunk)[:2000]
        sent = cast.admin.post(f"/review/{post_id}/changes", data=values)
        found += (
            problems_of(cast, f"changes {i}", sent, statuses=(303,))
            if sent.status_code != 303
            else []
        )
        found += problems_of(cast, f"review page {i}", cast.admin.get(f"/review/{post_id}"))
        values["publish_at"] = " ".join(chunk)[:40]
        found += problems_of(
            cast,
            f"bad time {i}",
            cast.admin.post(f"/review/{post_id}/approve", data=values),
            statuses=(409, 422),
        )
    found += problems_of(cast, "drafts", carl.get("/drafts"))
    assert found == []


@needs_corpus
def test_passkey_names_are_shown_without_script(cast: Cast) -> None:
    found: list[str] = []
    client = cast.admin
    for i, payload in enumerate(load_corpus()[:40]):
        device = SoftAuthenticator()
        credential = device.create(registration_options(client))
        values = form_of(client.get("/account/security"), "#passkey-form")
        values.update(name=payload[:60], credential=json.dumps(credential))
        answer = client.post("/account/security/passkeys", data=values)
        if answer.status_code == 422:  # (a name with control characters, say): shown back
            found += problems_of(cast, f"refused name {i}", answer, statuses=(422,))
        elif answer.status_code != 303:
            found.append(f"name {i}: status {answer.status_code}")
        if i % 20 == 19:  # the page lists every passkey: check it, then make room
            found += problems_of(cast, "security page", client.get("/account/security"))
    assert found == []


@needs_corpus
def test_the_audit_log_shows_typed_logins_without_script(cast: Cast) -> None:
    # Last in this module: its failed sign-ins throttle the test clients' address.
    visitor = cast.app.test_client()
    token = csrf_token(visitor, "/login")
    for chunk in chunked(load_corpus(), 100):
        visitor.post(
            "/login", data={"csrf_token": token, "login": " ".join(chunk), "password": "x"}
        )
    found = problems_of(cast, "/admin/audit", cast.admin.get("/admin/audit?action=sign_in_failed"))
    for payload in load_corpus()[:50]:
        query = f"/admin/audit?who={json.dumps(payload)[1:-1]}"
        found += problems_of(cast, query, cast.admin.get(query), statuses=(200, 422))
    assert found == []
