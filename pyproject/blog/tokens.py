"""Personal API tokens: made at /account/tokens, sent as `Authorization: Bearer <token>`.

A token is 32 random bytes (URL-safe text after a `pp_` marker), shown once when it is
made; only its SHA-256 is kept, so the table alone lets nobody in, and a token is found
by its digest in one indexed query. Each carries scopes (`read`, `posts:write`,
`media:write`), an optional expiry and its last use; revoking keeps the row for the record.

`authorise(request, scope)` is how the write API and Micropub know who is asking: only the
Authorization header counts (a session cookie never does, so a page on another site cannot
make a signed-in browser write), a missing, unknown, revoked or expired token is 401 and a
token without the scope 403.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pyproject.blog.auth import current_user, login_required
from pyproject.blog.db import get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import ApiToken, User, utcnow
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import Forbidden, NotFound, Unauthorized

SCOPES = {
    "read": "Read: Micropub queries and the source of your own posts, drafts included",
    "posts:write": "Write posts: create, change and delete your posts",
    "media:write": "Upload pictures to your media library",
}
# A marker that says what the text is (scanners find leaked tokens by it), not a secret.
TOKEN_MARK = "pp_"  # noqa: S105  # nosec B105
PREFIX_LENGTH = 10  # characters shown to name a token (the mark and 7 of the random part)
NAME_MAX = 80
TOKENS_PER_ACCOUNT = 50
TOKEN_FIELDS = ("name", "expires_in", *(f"scope_{s}" for s in SCOPES))
# "expires_in" choices: days (0 = never).
EXPIRY_CHOICES = {"": 0, "7": 7, "30": 30, "90": 90, "365": 365}
LAST_USED_GRANULARITY = timedelta(minutes=1)  # a busy client writes its last use once a minute


class TokenRefused(Unauthorized):
    """No usable token: the answer says how to send one (RFC 6750)."""

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        challenge = f'Bearer realm="api", error="{error}"' if error else 'Bearer realm="api"'
        super().__init__(description, headers=[("WWW-Authenticate", challenge)])


class ScopeMissing(Forbidden):
    """A good token without the scope this needs."""

    def __init__(self, scope: str) -> None:
        challenge = f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'
        super().__init__(
            f"This token may not do that: it needs the “{scope}” scope.",
            headers=[("WWW-Authenticate", challenge)],
        )


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token(
    db: Session, user: User, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """Add a token for the user (caller commits); give its row and the token, shown once."""
    raw = TOKEN_MARK + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        prefix=raw[:PREFIX_LENGTH],
        digest=digest_of(raw),
        scopes=" ".join(s for s in SCOPES if s in scopes),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    db.add(row)
    db.flush()
    return row, raw


def bearer_of(request: Request) -> str | None:
    """Give the token of an `Authorization: Bearer` header, None without one."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    if kind.lower() != "bearer" or not value or len(value) > 200 or " " in value:
        raise TokenRefused(
            "The Authorization header must be “Bearer” and a token.", "invalid_request"
        )
    return value


def token_of(request: Request) -> ApiToken:
    """Give the request's valid token, looked up once per request (401 without one)."""
    if "api_token" in request.context:
        return request.context["api_token"]
    raw = bearer_of(request)
    if raw is None:
        raise TokenRefused(
            "Send a personal API token: Authorization: Bearer <token> (make one at"
            " /account/tokens). Cookies are not accepted here.",
            "",
        )
    db = get_db(request)
    row = db.scalar(select(ApiToken).where(ApiToken.digest == digest_of(raw)))
    now = utcnow()
    if row is None:
        raise TokenRefused("This token is not known.")
    if row.revoked_at is not None:
        raise TokenRefused("This token was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused("This token has expired.")
    user = db.get(User, row.user_id)
    if user is None or not user.is_active:
        raise TokenRefused("The account of this token is not active.")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
        row.last_used_at = now
        db.commit()
    request.context["api_token"] = row
    request.context["user"] = user  # the views below (and media.upload) act as this account
    return row


def authorise(request: Request, scope: str) -> User:
    """Give the account a request's token acts for, if the token has `scope` (401/403)."""
    row = token_of(request)
    if scope not in row.scope_list:
        raise ScopeMissing(scope)
    return request.context["user"]


def authorise_any(request: Request, *scopes: str) -> User:
    """Give the token's account if the token has any one of `scopes` (401/403)."""
    row = token_of(request)
    if not any(scope in row.scope_list for scope in scopes):
        raise ScopeMissing(scopes[0])
    return request.context["user"]


def _audit(db: Session, user: User, action: str, detail: dict[str, Any], request: Request) -> None:
    """Write the change to the audit log, where there is one (#20, pyproject/blog/audit.py)."""
    try:
        from pyproject.blog import audit
    except ImportError:  # an instance built without the audit log
        return
    audit.record(db, user, action, detail, request=request)


# --- pages -----------------------------------------------------------------------------------


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    return list(
        db.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id)
        )
    )


def tokens_page(request: Request, form: Form, status: int = 200, **extra: Any) -> Response:
    user = current_user(request)
    now = utcnow()
    body = render_template(
        "auth/tokens.html",
        form=form,
        tokens=tokens_of(get_db(request), user),
        scopes=SCOPES,
        expiry_choices=EXPIRY_CHOICES,
        now=now,
        **{"new_token": None, **extra},
    )
    response = Response(body, status)
    response.headers.set("Cache-Control", "no-store")  # a new token may show
    return response


def read_token_form(form: Form) -> tuple[str, list[str], int]:
    """Give the cleaned name, scopes and days until expiry (errors on the form)."""
    name = " ".join(form.text("name", label="Name", required=True, max_length=NAME_MAX).split())
    scopes = [scope for scope in SCOPES if form.get(f"scope_{scope}") in ("on", "1", "true")]
    if not scopes:
        form.error("scopes", "Choose at least one thing the token may do.")
    expires_in = form.get("expires_in")
    if expires_in not in EXPIRY_CHOICES:
        form.error("expires_in", "Choose one of the expiry times offered.")
    return name, scopes, EXPIRY_CHOICES.get(expires_in, 0)


@login_required
def tokens(request: Request) -> Any:
    """GET: the account's tokens and the form for a new one. POST: make one, shown once."""
    if request.method == "GET":
        return tokens_page(request, Form({"scope_read": "on"}, TOKEN_FIELDS))
    user = current_user(request)
    db = get_db(request)
    form = Form(request.form, TOKEN_FIELDS)
    name, scopes, days = read_token_form(form)
    live = [t for t in tokens_of(db, user) if t.revoked_at is None]
    if len(live) >= TOKENS_PER_ACCOUNT:
        form.error("name", f"You have {len(live)} tokens: revoke one you no longer use first.")
    if not form.ok:
        return tokens_page(request, form, 422)
    expires_at = utcnow() + timedelta(days=days) if days else None
    row, raw = new_token(db, user, name, scopes, expires_at)
    _audit(
        db,
        user,
        "token_created",
        {"token": row.prefix, "name": name, "scopes": row.scopes},
        request,
    )
    db.commit()
    return tokens_page(request, Form({"scope_read": "on"}, TOKEN_FIELDS), new_token=raw)


@login_required
def revoke_token(request: Request, token_id: int) -> Response:
    """Revoke one of the account's tokens: it stops working at once."""
    user = current_user(request)
    db = get_db(request)
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("You have no such token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        _audit(db, user, "token_revoked", {"token": row.prefix, "name": row.name}, request)
        db.commit()
    flash(f"Revoked the token “{row.name}”: it no longer works.", "success")
    return redirect(url_for("account_tokens"))


def iso_utc(value: datetime | None) -> str | None:
    """Give a time as the API writes it (ISO 8601 in UTC), None for None."""
    return value.astimezone(UTC).isoformat() if value is not None else None


def register(app: App) -> None:
    app.add_route("/account/tokens", tokens, methods=["GET", "POST"], endpoint="account_tokens")
    app.add_route("/account/tokens/<int:token_id>/revoke", revoke_token, methods=["POST"])
