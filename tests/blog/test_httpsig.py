"""HTTP Signatures (draft-cavage, rsa-sha256) checked against an independent implementation
of the same draft from PyPI (httpsig, on pycryptodome), in both directions: what we sign,
it verifies; what it signs, we verify. Then every way a request can fail to verify.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpsig as independent
import pytest

from pyproject.blog import httpsig

NOW = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
URL = "https://blog.example/ap/inbox?x=1"
PATH = "/ap/inbox?x=1"
BODY = b'{"type":"Follow","actor":"https://social.example/users/carol"}'
KEY_ID = "https://social.example/users/carol#main-key"


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return httpsig.new_key_pair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[str, str]:
    return httpsig.new_key_pair()


def signed(keys: tuple[str, str], body: bytes | None = BODY, **options: object) -> dict[str, str]:
    return httpsig.sign(
        "POST",
        URL,
        body=body,
        key_id=KEY_ID,
        private_pem=keys[0],
        now=options.pop("now", NOW),  # type: ignore[arg-type]
        headers={"Content-Type": "application/activity+json"},
    )


def test_new_keys_are_rsa_2048_pem(keys: tuple[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization

    private, public = keys
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert serialization.load_pem_public_key(public.encode()).key_size == 2048


def test_signature_covers_what_mastodon_verifies(keys: tuple[str, str]) -> None:
    headers = signed(keys)
    parsed = httpsig.parse_signature(headers["Signature"])
    assert parsed.headers == ("(request-target)", "host", "date", "digest")
    assert parsed.algorithm == "rsa-sha256" and parsed.key_id == KEY_ID
    assert headers["Host"] == "blog.example"
    assert headers["Date"] == "Fri, 04 Dec 2026 17:00:00 GMT"
    assert headers["Digest"] == httpsig.digest_of(BODY)


def test_independent_implementation_verifies_our_signature(keys: tuple[str, str]) -> None:
    headers = signed(keys)
    verifier = independent.HeaderVerifier(
        headers,
        keys[1],
        required_headers=["(request-target)", "host", "date", "digest"],
        method="POST",
        path=PATH,
        sign_header="Signature",
    )
    assert verifier.verify()


def test_independent_implementation_rejects_our_signature_of_another_body(
    keys: tuple[str, str],
) -> None:
    headers = signed(keys)
    headers["Digest"] = httpsig.digest_of(b"{}")
    verifier = independent.HeaderVerifier(
        headers, keys[1], method="POST", path=PATH, sign_header="Signature"
    )
    assert not verifier.verify()


def independently_signed(keys: tuple[str, str], body: bytes = BODY) -> dict[str, str]:
    signer = independent.HeaderSigner(
        KEY_ID,
        keys[0],
        algorithm="rsa-sha256",
        headers=["(request-target)", "host", "date", "digest"],
        sign_header="Signature",
    )
    headers = {
        "Host": "blog.example",
        "Date": httpsig.http_date(NOW),
        "Digest": httpsig.digest_of(body),
        "Content-Type": "application/activity+json",
    }
    return dict(signer.sign(headers, method="POST", path=PATH))


def test_we_verify_the_independent_implementations_signature(keys: tuple[str, str]) -> None:
    headers = independently_signed(keys)
    parsed = httpsig.verify("POST", PATH, headers, BODY, keys[1], now=NOW)
    assert parsed.key_id == KEY_ID


def test_the_host_signed_is_the_one_sent(keys: tuple[str, str]) -> None:
    for url, host in (
        ("https://blog.example:443/x", "blog.example"),
        ("http://blog.example:80/x", "blog.example"),
        ("http://127.0.0.2:8001/x", "127.0.0.2:8001"),
        ("https://[::1]:8443/x", "[::1]:8443"),
    ):
        headers = httpsig.sign("GET", url, body=None, key_id=KEY_ID, private_pem=keys[0], now=NOW)
        assert headers["Host"] == host


def test_we_verify_a_get_signed_without_a_body(keys: tuple[str, str]) -> None:
    headers = httpsig.sign("GET", URL, body=None, key_id=KEY_ID, private_pem=keys[0], now=NOW)
    assert "Digest" not in headers
    httpsig.verify("GET", PATH, headers, None, keys[1], now=NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.update(Date=httpsig.http_date(NOW - timedelta(hours=13))), "too far"),
        (lambda h: h.update(Date="yesterday"), "not a date"),
        (lambda h: h.pop("Date"), "no Date"),
        (lambda h: h.update(Digest="SHA-256=" + base64.b64encode(b"x" * 32).decode()), "Digest"),
        (lambda h: h.pop("Digest"), "no Digest"),
        (lambda h: h.update(Digest="MD5=abc"), "no SHA-256"),
        (lambda h: h.update(Host="evil.example"), "does not verify"),
        (lambda h: h.pop("Signature"), "not signed"),
        (lambda h: h.update(Signature="garbage"), "malformed"),
        (
            lambda h: h.update(Signature=h["Signature"].replace("rsa-sha256", "hmac-sha256")),
            "not accepted",
        ),
        (
            lambda h: h.update(
                Signature=h["Signature"].replace(
                    'headers="(request-target) host date digest"', 'headers="date"'
                )
            ),
            "does not cover",
        ),
    ],
)
def test_tampered_requests_do_not_verify(keys: tuple[str, str], change, reason: str) -> None:
    headers = signed(keys)
    change(headers)
    with pytest.raises(httpsig.SignatureError, match=reason):
        httpsig.verify("POST", PATH, headers, BODY, keys[1], now=NOW)


def test_another_path_or_method_does_not_verify(keys: tuple[str, str]) -> None:
    headers = signed(keys)
    with pytest.raises(httpsig.SignatureError, match="does not verify"):
        httpsig.verify("POST", "/ap/blog/inbox", headers, BODY, keys[1], now=NOW)
    with pytest.raises(httpsig.SignatureError, match="does not verify"):
        httpsig.verify("PUT", PATH, headers, BODY, keys[1], now=NOW)


def test_another_key_does_not_verify(keys: tuple[str, str], other_keys: tuple[str, str]) -> None:
    with pytest.raises(httpsig.SignatureError, match="does not verify"):
        httpsig.verify("POST", PATH, signed(keys), BODY, other_keys[1], now=NOW)
    with pytest.raises(httpsig.SignatureError, match="cannot be read"):
        httpsig.verify("POST", PATH, signed(keys), BODY, "not a key", now=NOW)


def test_a_date_within_twelve_hours_either_way_verifies(keys: tuple[str, str]) -> None:
    for hours in (-11.9, 11.9):
        headers = signed(keys, now=NOW + timedelta(hours=hours))
        httpsig.verify("POST", PATH, headers, BODY, keys[1], now=NOW)
