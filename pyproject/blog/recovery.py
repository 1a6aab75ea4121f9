"""Password reset: a signed link by email, valid for an hour, that works once.

`/reset` asks for an account's email address or username and always answers the same
page, whether or not an account has it, so the form tells nobody who has an account
here. Requests are throttled per typed address and per client. The request only queues
the `send_reset_link` job, so it does the same work, in the same time, either way; the
job looks the account up and, for an active one, queues a message (kind "reset") with a
link `/reset/<token>`.

The token is "<user id>.<expiry>.<signature>": an HMAC-SHA256, under a key derived from
SECRET_KEY, over the user id, the expiry, the account's current password hash and the
purpose. Nothing is stored: the link expires with its expiry, and it works once because
choosing a new password changes the hash it was signed over (so does any other password
change, which rightly ends every link sent before it). Using it ends every session of
the account, then signs the user in afresh.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from pyproject.blog import jobs, mail, throttle
from pyproject.blog.auth import (
    check_new_password,
    hash_password,
    remember_device,
    sign_in,
)
from pyproject.blog.db import begin_immediate, end_transaction, get_database, get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import SessionRecord, User, utcnow
from pyproject.blog.throttle import Limit
from pyproject.lib import (
    App,
    Request,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)

log = logging.getLogger("pyproject.recovery")

RESET_LIFETIME = timedelta(hours=1)
# Per typed address (or username) and per client address, each over an hour.
PER_ACCOUNT = Limit(3, 3600)
PER_CLIENT = Limit(10, 3600)
THROTTLE_ACTION = "password-reset"
SENT = "If an account has that address or username, a link to choose a new password is on its way."

_PURPOSE = b"pyproject.blog.recovery password reset"
_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})\Z")


# --- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResetToken:
    """A reset token's parts, as read from a link (not yet checked)."""

    user_id: int
    expires: int  # a Unix time
    signature: str


def _signature(secret: str, user_id: int, expires: int, password_hash: str) -> str:
    """Give the token's HMAC-SHA256 (base64url) under a key derived from SECRET_KEY."""
    key = hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
    message = f"{user_id}\x00{expires}\x00{password_hash}\x00reset".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_reset_token(user: User, *, secret: str, now: datetime | None = None) -> str:
    """Give a reset token for `user`, valid for RESET_LIFETIME from `now`."""
    expires = int(((now or utcnow()) + RESET_LIFETIME).timestamp())
    return f"{user.id}.{expires}.{_signature(secret, user.id, expires, user.password_hash)}"


def parse_reset_token(token: str) -> ResetToken | None:
    """Give a token's parts if it has a token's shape, else None."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    return ResetToken(int(found[1]), int(found[2]), found[3])


def reset_token_user(
    db: Session, token: str, *, secret: str, now: datetime, lock: bool = False
) -> User | None:
    """Give the active user a token was made for, if it is unexpired and still signed over
    their current password hash; else None. `lock` holds the user's row (for the write)."""
    parsed = parse_reset_token(token)
    if parsed is None or parsed.expires <= now.timestamp():
        return None
    query = select(User).where(User.id == parsed.user_id)
    user = db.scalar(query.with_for_update() if lock else query)
    if user is None or not user.is_active:
        return None
    expected = _signature(secret, user.id, parsed.expires, user.password_hash)
    return user if hmac.compare_digest(expected, parsed.signature) else None


def _secret() -> str:
    return str(current_app().config["SECRET_KEY"])


# --- views -------------------------------------------------------------------------------


def register(app: App) -> None:
    """Add the password reset routes."""
    app.add_route("/reset", reset_request, methods=["GET", "POST"])
    app.add_route("/reset/<token>", reset_password, methods=["GET", "POST"])


def _private(page: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Give a page no cache may keep (it answers about, or carries, a reset link)."""
    response = Response(page, status, headers)
    response.headers.set("Cache-Control", "no-store")
    return response


def reset_request(request: Request) -> Any:
    """Ask for a reset link: the same answer whether or not an account matches."""
    form = Form(request.form, ("email",))
    if request.method != "POST":
        return _private(render_template("auth/reset_request.html", form=form))
    typed = form.text("email", label="Email address or username", required=True, max_length=254)
    if "\r" in typed or "\n" in typed:
        form.error("email", "Email address or username contains characters that are not allowed.")
    if not form.ok:
        return _private(render_template("auth/reset_request.html", form=form), 422)
    typed = typed.lower()
    db, now = get_db(request), utcnow()
    wait = throttle.hit(
        db,
        THROTTLE_ACTION,
        {"client": (request.remote_addr, PER_CLIENT), "account": (typed, PER_ACCOUNT)},
        secret=_secret(),
        now=now,
    )
    if wait:
        db.rollback()
        minutes = max(1, (wait + 59) // 60)
        form.error(
            "email",
            f"Too many reset requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        page = render_template("auth/reset_request.html", form=form)
        return _private(page, 429, {"Retry-After": str(wait)})
    # The account is looked up by the job, not here: the request does the same work,
    # and takes the same time, whether or not an account matches.
    jobs.enqueue(db, send_reset_link, typed, int(now.timestamp()))
    db.commit()
    return _private(render_template("auth/reset_sent.html", message=SENT))


@jobs.job(retries=5)
def send_reset_link(typed: str, asked_at: int) -> None:
    """Queue a reset message to the active account `typed` names (its address or username),
    if there is one; once per request, however often the job runs."""
    app = jobs.current_app()
    with get_database(app).write() as db:
        user = db.scalar(select(User).where(or_(User.email == typed, User.username == typed)))
        if user is None or not user.is_active:
            return
        secret = str(app.config["SECRET_KEY"])
        token = make_reset_token(user, secret=secret)  # valid for an hour from now
        site = str(app.config.get("SITE_NAME") or "the blog")
        try:
            mail.queue_mail(
                db,
                app=app,
                kind="reset",
                to=user.email,
                to_name=user.username,  # a display name may hold a line break; a username never
                object_id=f"{user.id}-{asked_at}",
                subject=f"Choose a new password for {site}",
                template="reset",
                token=token,
                name=user.name,
                username=user.username,
                minutes=int(RESET_LIFETIME.total_seconds() // 60),
            )
        except mail.InvalidMail as error:  # an address accounts allow but mail cannot carry
            log.warning("no reset message for user %s: %s", user.id, error)


def _invalid(status: int = 410) -> Response:
    return _private(render_template("auth/reset_invalid.html"), status)


def reset_password(request: Request, token: str) -> Any:
    """Choose a new password through a reset link; every session of the account ends."""
    form = Form(request.form, ("password", "confirm"))
    now = utcnow()
    if request.method != "POST":
        user = reset_token_user(get_db(request), token, secret=_secret(), now=now)
        if user is None:
            return _invalid()
        return _private(render_template("auth/reset_form.html", form=form, user=user, token=token))
    password = check_new_password(form)
    db = get_db(request)
    # Hashed outside any transaction (a POST's begins holding SQLite's write lock), so
    # the lock is held for moments, not for the hash's deliberate slowness.
    end_transaction(db)
    new_hash = hash_password(password) if form.ok else None
    begin_immediate(db)
    # Checked inside the write: of two uses at once, the second finds the hash changed.
    user = reset_token_user(db, token, secret=_secret(), now=now, lock=True)
    if user is None:
        db.rollback()
        return _invalid()
    if new_hash is None:
        db.rollback()
        form.values.update(password="", confirm="")
        page = render_template("auth/reset_form.html", form=form, user=user, token=token)
        return _private(page, 422)
    user.password_hash = new_hash
    db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id))
    db.commit()
    sign_in(request, user)
    flash("Your new password is set, and every other device is signed out.", "success")
    response = redirect(url_for("home"))
    remember_device(request, response, user, now)
    return response
