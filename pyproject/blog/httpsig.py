"""HTTP Signatures as the fediverse uses them: draft-cavage-http-signatures, `rsa-sha256`.

Mastodon (and most ActivityPub servers) sign a request over `(request-target) host date
digest`, with a `Digest: SHA-256=<base64>` header of the body, and give the key's URL in
`keyId`: the sender's actor document holds the public key (`publicKey.publicKeyPem`).

`sign(...)` gives the headers to send; `verify(...)` checks a received request against a
public key and raises `SignatureError` saying what is wrong. `parse_signature(...)` reads
the `Signature` header (the key to fetch comes from it). Pure functions: no network, no
database; the inbox (activitypub.py) fetches keys and keeps them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNED_HEADERS = ("(request-target)", "host", "date", "digest")
REQUIRED_HEADERS = frozenset({"(request-target)", "host", "date"})  # digest too, with a body
MAX_SKEW = timedelta(hours=12)
KEY_BITS = 2048
MAX_HEADER = 8192
ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})  # hs2019: the algorithm is the key's (RSA)


class SignatureError(Exception):
    """A request's signature does not verify; the message says why (safe to log and show)."""


@dataclass(frozen=True)
class ParsedSignature:
    """What a `Signature` header says: the key, the algorithm, the headers, the signature."""

    key_id: str
    algorithm: str
    headers: tuple[str, ...]
    signature: bytes


def new_key_pair() -> tuple[str, str]:
    """Give a new RSA-2048 key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def digest_of(body: bytes) -> str:
    """Give the `Digest` header value of a body: `SHA-256=<base64>`."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def http_date(moment: datetime) -> str:
    """Give a time as an HTTP date (`Fri, 04 Dec 2026 17:00:00 GMT`)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def signing_string(
    names: tuple[str, ...] | list[str], method: str, path: str, headers: Mapping[str, str]
) -> str:
    """Give the text that is signed: one `name: value` line per signed header."""
    lower = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {path}")
        elif name in lower:
            lines.append(f"{name}: {lower[name].strip()}")
        else:
            raise SignatureError(f"the signed header {name!r} is missing")
    return "\n".join(lines)


def sign(
    method: str,
    url: str,
    *,
    body: bytes | None,
    key_id: str,
    private_pem: str,
    now: datetime,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Give the headers to send with a signed request: Host, Date, Digest and Signature.

    `headers` (Content-Type, Accept...) are included as given, unsigned.
    """
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = dict(headers or {})
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = parts.netloc.rpartition("@")[2]
    if default is not None and host.endswith(f":{default}"):
        host = host[: -len(f":{default}")]  # as clients send it: no default port
    sent["Host"] = host
    sent["Date"] = http_date(now)
    names: list[str] = ["(request-target)", "host", "date"]
    if body is not None:
        sent["Digest"] = digest_of(body)
        names.append("digest")
    text = signing_string(names, method, path, sent).encode()
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys sign requests here")
    signature = base64.b64encode(key.sign(text, padding.PKCS1v15(), hashes.SHA256())).decode()
    sent["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{signature}"'
    )
    return sent


_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


def parse_signature(value: str | None) -> ParsedSignature:
    """Read a `Signature` header; raise SignatureError when it is missing or malformed."""
    if not value:
        raise SignatureError("the request is not signed (no Signature header)")
    if len(value) > MAX_HEADER:
        raise SignatureError("the Signature header is too long")
    params: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _PARAM.match(value, position)
        if match is None:
            raise SignatureError("the Signature header is malformed")
        params[match.group(1)] = match.group(2)
        position = match.end()
    key_id = params.get("keyId", "")
    if not key_id or not params.get("signature"):
        raise SignatureError("the Signature header lacks keyId or signature")
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in ALGORITHMS:
        raise SignatureError(f"the algorithm {algorithm!r} is not accepted (rsa-sha256)")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except ValueError:
        raise SignatureError("the signature is not base64") from None
    names = tuple(params.get("headers", "date").lower().split())
    return ParsedSignature(key_id, algorithm, names, signature)


def check_date(value: str | None, now: datetime, max_skew: timedelta = MAX_SKEW) -> None:
    """Raise SignatureError unless `value` is an HTTP date within `max_skew` of now."""
    if not value:
        raise SignatureError("the request has no Date header")
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise SignatureError("the Date header is not a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if abs(now - moment) > max_skew:
        raise SignatureError("the Date header is too far from now (more than 12 hours)")


def check_digest(value: str | None, body: bytes) -> None:
    """Raise SignatureError unless a `Digest` header names the body's SHA-256."""
    if not value:
        raise SignatureError("the request has a body and no Digest header")
    for part in value.split(","):
        name, _, encoded = part.strip().partition("=")
        if name.strip().lower() == "sha-256":
            if encoded.strip() != digest_of(body).partition("=")[2]:
                raise SignatureError("the Digest does not match the body")
            return
    raise SignatureError("the Digest header has no SHA-256 value")


def verify(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | None,
    public_pem: str,
    *,
    now: datetime,
    parsed: ParsedSignature | None = None,
    max_skew: timedelta = MAX_SKEW,
) -> ParsedSignature:
    """Check a request's signature with the sender's public key; give what it said.

    `path` is the path and query as requested. The signature must cover
    `(request-target) host date` (and `digest`, with a body), the date must be within
    `max_skew` of `now` and the digest must match the body. Raises SignatureError.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    parsed = parsed or parse_signature(lower.get("signature"))
    wanted = REQUIRED_HEADERS | ({"digest"} if body else set())
    missing = wanted - set(parsed.headers)
    if missing:
        raise SignatureError("the signature does not cover " + ", ".join(sorted(missing)))
    check_date(lower.get("date"), now, max_skew)
    if body:
        check_digest(lower.get("digest"), body)
    text = signing_string(parsed.headers, method, path, lower).encode()
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except ValueError:
        raise SignatureError("the sender's public key cannot be read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the sender's key is not an RSA key")
    try:
        key.verify(parsed.signature, text, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureError("the signature does not verify with the sender's key") from None
    return parsed
