"""CSRF protection and the security headers every response carries."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from pyproject.lib.exceptions import CSRFError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
_SESSION_KEY = "_csrf"

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def security_headers(csp: str = DEFAULT_CSP, *, hsts: bool = False) -> list[tuple[str, str]]:
    """Give the headers every response carries (CSP, nosniff, framing, referrer)."""
    headers = [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if hsts:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


def csrf_token(session: Any) -> str:
    """Give the session's CSRF token, making one on first use."""
    token = session.get(_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def origin_of(url: str) -> str:
    """Give the scheme://host[:port] origin of an absolute URL, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(request: Any, session: Any, trusted_origins: list[str] | tuple[str, ...]) -> None:
    """Raise 403 unless an unsafe request carries this session's token from a trusted origin.

    The token comes from the form field or the X-CSRF-Token header, never the query
    string. An Origin header, when the browser sends one, must be one of ours: a
    foreign or `null` origin is refused even with a valid token.
    """
    if request.method not in UNSAFE_METHODS:
        return
    origin = request.environ.get("HTTP_ORIGIN")
    if origin is not None:
        own = {o.lower().rstrip("/") for o in trusted_origins}
        own.add(f"{request.scheme}://{request.host}".lower())
        if origin.strip().lower().rstrip("/") not in own:
            raise CSRFError("This form was sent from another site, so it was refused.")
    if request.environ.get("HTTP_SEC_FETCH_SITE") == "cross-site":
        raise CSRFError("This form was sent from another site, so it was refused.")
    expected = session.get(_SESSION_KEY)
    sent = request.environ.get("HTTP_X_CSRF_TOKEN")
    if sent is None:
        sent = request.form.get(CSRF_FIELD)
    if not expected or not sent or not isinstance(sent, str):
        raise CSRFError()
    if not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise CSRFError()
