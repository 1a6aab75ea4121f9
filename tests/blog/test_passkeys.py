"""Tests for pyproject/blog/passkeys.py: registering passkeys, signing in with one alone,
replays and cloned counters, removing them, and passkeys meeting the second-factor rule.

The browser's part is played by SoftAuthenticator: a P-256 key pair that answers the
site's options exactly as an authenticator does ("none" attestation, user present and
verified, a signature counter). tests/browser/test_browser_passkeys.py does the same with
Chromium's virtual authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from blog.conftest import (
    AUTHOR,
    Cast,
    Clock,
    csrf_token,
    form_of,
    login,
    make_blog_app,
    signup_admin,
)
from pyproject.blog.db import get_database
from pyproject.blog.models import AuditEntry, LoginAttempt, Passkey
from pyproject.lib.testing import TestClient

ORIGIN = "http://localhost"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    """A passkey on a pretend device: makes credentials and signs assertions."""

    def __init__(self, user_verified: bool = True) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.count = 0
        self.user_verified = user_verified

    def _flags(self, extra: int = 0) -> bytes:
        return bytes([0x01 | (0x04 if self.user_verified else 0) | extra])

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(self, options: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
        client = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(options["rp"]["id"].encode()).digest()
            + self._flags(0x40)
            + struct.pack(">I", self.count)
            + bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client),
                "attestationObject": b64(attestation),
                "transports": ["internal", "made-up"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self, options: dict[str, Any], *, count: int | None = None, origin: str = ORIGIN
    ) -> dict[str, Any]:
        self.count = self.count + 1 if count is None else count
        client = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(options["rpId"].encode()).digest()
            + self._flags()
            + struct.pack(">I", self.count)
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(b"2"),
            },
            "clientExtensionResults": {},
        }


def registration_options(client: TestClient) -> dict[str, Any]:
    token = csrf_token(client, "/account/security")
    answer = client.post("/account/security/passkeys/options", headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    return answer.json


def add(client: TestClient, device: SoftAuthenticator, name: str = "Laptop", **changes: Any):
    options = registration_options(client)
    credential = device.create(options)
    values = form_of(client.get("/account/security"), "#passkey-form")
    values.update(name=name, credential=json.dumps(credential), **changes)
    return client.post("/account/security/passkeys", data=values)


def sign_in_options(client: TestClient) -> dict[str, Any]:
    token = csrf_token(client, "/login")
    answer = client.post("/login/passkey/options", headers={"X-CSRF-Token": token})
    assert answer.status_code == 200
    return answer.json


def sign_in(client: TestClient, credential: dict[str, Any], next: str = "/drafts"):
    values = form_of(client.get("/login"), "#passkey-sign-in")
    values.update(credential=json.dumps(credential), next=next)
    return client.post("/login/passkey", data=values)


def stored(cast: Cast) -> list[Passkey]:
    with get_database(cast.app).read() as db:
        rows = list(db.scalars(select(Passkey).order_by(Passkey.id)))
        db.expunge_all()
        return rows


def actions(cast: Cast) -> list[str]:
    with get_database(cast.app).read() as db:
        return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- registering -----------------------------------------------------------------------------


def test_registration_options_name_this_site_and_the_account(cast: Cast) -> None:
    options = registration_options(cast.author)
    assert options["rp"]["id"] == "localhost"
    assert options["user"]["name"] == "alice"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == []
    assert len(base64.urlsafe_b64decode(options["challenge"] + "==")) == 32


def test_a_passkey_is_added_named_listed_and_logged(cast: Cast) -> None:
    device = SoftAuthenticator()
    answer = add(cast.author, device, name="Alice's phone")
    assert answer.status_code == 303 and answer.location == "/account/security"
    [passkey] = stored(cast)
    assert (passkey.name, passkey.credential_id, passkey.sign_count) == (
        "Alice's phone",
        b64(device.credential_id),
        0,
    )
    assert passkey.transports == "internal"  # what no browser sends is dropped
    page = cast.author.get("/account/security")
    assert "Alice&#39;s phone" in page.text or "Alice's phone" in page.text
    assert "passkey_added" in actions(cast)
    # the next registration excludes it, so a device is not registered twice
    again = registration_options(cast.author)
    assert [item["id"] for item in again["excludeCredentials"]] == [b64(device.credential_id)]


@pytest.mark.parametrize(
    ("name", "error"),
    [("", "Name is required."), ("x" * 61, "Name is too long"), ("bad\x00name", "not allowed")],
)
def test_a_bad_name_is_422_and_nothing_is_kept(cast: Cast, name: str, error: str) -> None:
    answer = add(cast.author, SoftAuthenticator(), name=name)
    assert answer.status_code == 422
    assert error in answer.html.select_one("#e-passkey-name").get_text()
    assert stored(cast) == []


def test_a_registration_for_another_challenge_or_origin_is_refused(cast: Cast) -> None:
    device = SoftAuthenticator()
    options = registration_options(cast.author)
    forged = device.create({**options, "challenge": b64(os.urandom(32))})
    values = form_of(cast.author.get("/account/security"), "#passkey-form")
    values.update(name="Forged", credential=json.dumps(forged))
    assert cast.author.post("/account/security/passkeys", data=values).status_code == 422
    options = registration_options(cast.author)
    phished = device.create(options, origin="http://evil.example")
    values.update(credential=json.dumps(phished))
    assert cast.author.post("/account/security/passkeys", data=values).status_code == 422
    assert stored(cast) == []


def test_a_registration_without_user_verification_is_refused(cast: Cast) -> None:
    assert add(cast.author, SoftAuthenticator(user_verified=False)).status_code == 422
    assert stored(cast) == []


@pytest.mark.parametrize("credential", ["", "not json", "[1, 2]", '{"rawId": 5}', "x" * 20_000])
def test_a_garbled_answer_is_422(cast: Cast, credential: str) -> None:
    registration_options(cast.author)
    values = form_of(cast.author.get("/account/security"), "#passkey-form")
    values.update(name="Garbled", credential=credential)
    answer = cast.author.post("/account/security/passkeys", data=values)
    assert answer.status_code == 422
    assert answer.html.select_one("#f-passkey-name")["value"] == "Garbled"


def test_a_challenge_expires_after_five_minutes(cast: Cast, clock: Clock) -> None:
    device = SoftAuthenticator()
    options = registration_options(cast.author)
    clock.advance(minutes=6)
    values = form_of(cast.author.get("/account/security"), "#passkey-form")
    values.update(name="Late", credential=json.dumps(device.create(options)))
    assert cast.author.post("/account/security/passkeys", data=values).status_code == 422


# --- signing in ------------------------------------------------------------------------------


def test_a_passkey_alone_signs_in(cast: Cast) -> None:
    device = SoftAuthenticator()
    assert add(cast.author, device).status_code == 303
    visitor = cast.app.test_client()
    answer = sign_in(visitor, device.get(sign_in_options(visitor)))
    assert answer.status_code == 303 and answer.location == "/drafts"
    assert visitor.get("/drafts").status_code == 200
    [passkey] = stored(cast)
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    with get_database(cast.app).read() as db:
        line = db.scalars(
            select(AuditEntry).where(AuditEntry.action == "sign_in").order_by(AuditEntry.id.desc())
        ).first()
        assert (line.actor_name, json.loads(line.detail)) == ("alice", {"with": "passkey"})


def test_a_replayed_assertion_is_refused(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    first = cast.app.test_client()
    used = device.get(sign_in_options(first))
    assert sign_in(first, used).status_code == 303
    thief = cast.app.test_client()
    sign_in_options(thief)  # a challenge of its own: the old answer signed another one
    refused = sign_in(thief, used)
    assert refused.status_code == 422
    assert thief.get("/drafts").location.startswith("/login")


def test_an_assertion_whose_counter_did_not_grow_is_refused(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    visitor = cast.app.test_client()
    assert sign_in(visitor, device.get(sign_in_options(visitor), count=5)).status_code == 303
    clone = cast.app.test_client()
    refused = sign_in(clone, device.get(sign_in_options(clone), count=5))
    assert refused.status_code == 422
    assert "could not be used" in refused.text
    assert clone.get("/drafts").location.startswith("/login")
    assert stored(cast)[0].sign_count == 5
    with get_database(cast.app).read() as db:
        line = db.scalar(select(AuditEntry).where(AuditEntry.action == "passkey_failed"))
        assert "sign count" in json.loads(line.detail)["reason"]
    later = cast.app.test_client()
    assert sign_in(later, device.get(sign_in_options(later), count=6)).status_code == 303


def test_an_unknown_or_foreign_passkey_is_refused_and_counted(cast: Cast) -> None:
    stranger = SoftAuthenticator()
    visitor = cast.app.test_client()
    assert sign_in(visitor, stranger.get(sign_in_options(visitor))).status_code == 422
    device = SoftAuthenticator()
    add(cast.author, device)
    assert (
        sign_in(
            visitor, device.get(sign_in_options(visitor), origin="http://evil.example")
        ).status_code
        == 422
    )
    with get_database(cast.app).read() as db:
        failed = db.scalars(select(LoginAttempt.account).where(LoginAttempt.succeeded.is_(False)))
        assert sorted(failed) == ["passkey", "user:2"]


def test_a_passkey_sign_in_without_a_challenge_is_refused(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    visitor = cast.app.test_client()
    assert (
        sign_in(
            visitor, device.get({"challenge": b64(os.urandom(32)), "rpId": "localhost"})
        ).status_code
        == 422
    )


def test_passkey_sign_ins_are_throttled_like_passwords(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    visitor = cast.app.test_client()
    for _ in range(5):
        login(visitor, AUTHOR.username, "wrong password")
    answer = sign_in(visitor, device.get(sign_in_options(visitor)))
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0


def test_the_sign_in_page_offers_passkeys_only_to_script(cast: Cast) -> None:
    page = cast.anonymous.get("/login")
    form = page.html.select_one("#passkey-sign-in")
    assert form.has_attr("hidden")  # passkeys.js shows it where the browser has passkeys
    assert page.html.select_one('form[action="/login"] input[name="password"]') is not None


def test_next_must_stay_on_this_site(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    visitor = cast.app.test_client()
    answer = sign_in(visitor, device.get(sign_in_options(visitor)), next="https://evil.example/")
    assert answer.status_code == 303 and answer.location == "/"


# --- removing ----------------------------------------------------------------------------------


def test_removing_a_passkey_needs_the_password(cast: Cast) -> None:
    device = SoftAuthenticator()
    add(cast.author, device)
    [passkey] = stored(cast)
    path = f"/account/security/passkeys/{passkey.id}/delete"
    values = form_of(cast.author.get("/account/security"), f'form[action="{path}"]')
    wrong = cast.author.post(path, data={**values, "password": "not it"})
    assert wrong.status_code == 422 and len(stored(cast)) == 1
    token = csrf_token(cast.other)
    theirs = cast.other.post(path, data={"csrf_token": token, "password": "bob passphrase 1"})
    assert theirs.status_code == 404 and len(stored(cast)) == 1
    done = cast.author.post(path, data={**values, "password": AUTHOR.password})
    assert done.status_code == 303 and stored(cast) == []
    assert actions(cast)[-1] == "passkey_removed"
    visitor = cast.app.test_client()
    assert sign_in(visitor, device.get(sign_in_options(visitor))).status_code == 422


# --- the second-factor rule -------------------------------------------------------------------


@pytest.fixture
def strict_app(tmp_path: Path) -> Iterator[Any]:
    app = make_blog_app(tmp_path, overrides={"REQUIRE_SECOND_FACTOR": "everyone"})
    yield app
    get_database(app).dispose()


def test_a_passkey_meets_the_rule_and_a_password_alone_does_not(strict_app: Any) -> None:
    admin = strict_app.test_client()
    signup_admin(admin)
    assert admin.get("/drafts").location == "/account/security"
    device = SoftAuthenticator()
    options = registration_options(admin)
    values = form_of(admin.get("/account/security"), "#passkey-form")
    values.update(name="Key", credential=json.dumps(device.create(options)))
    assert admin.post("/account/security/passkeys", data=values).status_code == 303
    assert admin.get("/drafts").status_code == 200  # making it here met the rule
    by_password = strict_app.test_client()
    assert login(by_password, "admin", "admin passphrase 1").status_code == 303
    assert by_password.get("/drafts").location == "/account/security"
    assert "sign in with your passkey" in by_password.get("/account/security").text
    by_passkey = strict_app.test_client()
    assert sign_in(by_passkey, device.get(sign_in_options(by_passkey))).status_code == 303
    assert by_passkey.get("/drafts").status_code == 200
