"""Authors: first-run setup, sign in and out, throttling, accounts, and user administration."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.blog.db import begin_immediate, end_transaction, get_db
from pyproject.blog.forms import Form, without_control_characters
from pyproject.blog.models import (
    Invitation,
    LoginAttempt,
    SecondFactor,
    SiteState,
    User,
    utcnow,
)
from pyproject.blog.session_store import prefetched_user
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
from pyproject.lib.exceptions import Forbidden, NotFound
from pyproject.lib.http import is_safe_redirect

# OWASP's Argon2id recommendation (m=19 MiB, t=2, p=1): slow on purpose, for guessers.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
# Verified against when the account does not exist, so both answers take the same time.
_DUMMY_HASH = HASHER.hash("no such user: this only spends the same time as a real check")

PASSWORD_MIN, PASSWORD_MAX = 8, 1024
USERNAME_RE = re.compile(r"^[a-z0-9_-]{3,40}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

ACCOUNT_FREE_FAILURES = 5
PAIR_FREE_FAILURES = 5  # one account from one address
ADDRESS_FREE_FAILURES = 20
THROTTLE_WINDOW = timedelta(minutes=15)
FIRST_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 15 * 60

KNOWN_DEVICE_COOKIE = "known_device"
KNOWN_DEVICE_MAX_AGE = 365 * 24 * 3600
KNOWN_DEVICE_ACCOUNTS = 5
_KNOWN_DEVICE_MAX_LENGTH = 300  # five entries and a signature fit in well under this
LOGIN_FAILED = "That username or email and password do not match an account."


# --- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """Give the Argon2id hash of a password (with a fresh random salt)."""
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Give whether `password` matches; always spends one hash's time, even with no user."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new_password(form: Form, field: str = "password", confirm: str = "confirm") -> str:
    """Give a new password after checking its length and confirmation (errors on the form)."""
    password = form.values.get(field, "")
    if len(password) < PASSWORD_MIN:
        form.error(field, f"Use at least {PASSWORD_MIN} characters.")
    elif len(password) > PASSWORD_MAX:
        form.error(field, f"Use at most {PASSWORD_MAX:,} characters.")
    elif confirm in form.values and form.values[confirm] != password:
        form.error(confirm, "The two passwords are not the same.")
    return password


# --- the signed-in user ------------------------------------------------------------------


_USER_BY_ID = select(User).where(User.id == bindparam("id"))


def current_user(request: Request) -> User | None:
    """Give the signed-in, active user of this request (loaded once), or None."""
    if "user" in request.context:
        return request.context["user"]
    user = None
    session = request.session
    if session is not None and request.cookies:
        user_id = session.get("user_id")
        if isinstance(user_id, int):
            # Most often read with the session's row (session_store); else a statement
            # built once (Session.get builds its lookup per call) (#13).
            user = prefetched_user(request, user_id)
            if user is None:
                user = get_db(request).execute(_USER_BY_ID, {"id": user_id}).scalar()
            if user is not None and not user.is_active:
                session.clear()
                user = None
    request.context["user"] = user
    return user


def sign_in(request: Request, user: User, method: str = "password") -> None:
    """Start a signed-in session under a new id (the pre-login id becomes worthless).

    The sign-in is written to the audit log with `method` (password, code, passkey...).
    """
    from pyproject.blog import audit  # (it builds on this module)
    from pyproject.blog.devices import note_device  # (it builds on this module)

    db = get_db(request)
    # The caller read in this transaction (the account, its second factor): on SQLite a
    # read transaction cannot take the write lock while another worker writes ("database
    # is locked" at once, no waiting), so end it and begin one that holds the lock.
    end_transaction(db)
    begin_immediate(db)
    audit.record(db, user, "sign_in", {"with": method}, request=request)
    db.commit()

    session = request.session
    session.rotate()
    session.pop("_csrf", None)  # a token seen before signing in is worth nothing after
    session["user_id"] = user.id
    session["_signed_in_with"] = method  # roles.must_enrol reads it (#20)
    note_device(request)
    request.context["user"] = user


def login_url(request: Request) -> str:
    return url_for("login", next=request.full_path)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the sign-in page, then back here."""

    @functools.wraps(view)
    def wrapper(request: Request, **kwargs: Any) -> Any:
        if current_user(request) is None:
            return redirect(login_url(request))
        return view(request, **kwargs)

    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Like login_required, and 403 for signed-in users who are not admins."""

    @functools.wraps(view)
    def wrapper(request: Request, **kwargs: Any) -> Any:
        user = current_user(request)
        if user is None:
            return redirect(login_url(request))
        if not user.is_admin:
            raise Forbidden("Only administrators can do that.")
        return view(request, **kwargs)

    return wrapper


def safe_next(target: str | None, default: str) -> str:
    """Give `target` if it is a path on this site, else `default` (no open redirects)."""
    return target if is_safe_redirect(target) else default


# --- throttling --------------------------------------------------------------------------


def _wait_after(failures: int, free: int) -> int:
    if failures < free:
        return 0
    return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** (failures - free))


def _failure_wait(db: Session, now: datetime, free: int, since: datetime, *where: Any) -> int:
    """Give the seconds left to wait after the failures matching `where` after `since`."""
    count, latest = db.execute(
        select(func.count(), func.max(LoginAttempt.attempted_at)).where(
            *where, LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at > since
        )
    ).one()
    wait = _wait_after(count, free)
    if not wait or latest is None:
        return 0
    remaining = (latest + timedelta(seconds=wait) - now).total_seconds()
    return max(0, int(remaining + 0.999))


def _since_last_success(db: Session, since: datetime, *where: Any) -> datetime:
    """Give `since`, or the last success matching `where` if that is later."""
    last = db.scalar(
        select(func.max(LoginAttempt.attempted_at)).where(*where, LoginAttempt.succeeded.is_(True))
    )
    return max(since, last) if last else since


def throttle_wait(
    db: Session, account: str, address: str | None, now: datetime, *, known_device: bool = False
) -> int:
    """Give how many seconds a sign-in to `account` (from `address`, if given) must wait.

    Three counts over THROTTLE_WINDOW: the account's failures since its last success, the
    (account, address) pair's since the pair's last success, and the address's. A
    `known_device` (a browser that signed in to this account before) lifts the account-wide
    count alone, so strangers cannot lock the owner out; without an address (a password
    change) the account-wide count is all there is, and it always applies.
    """
    since = now - THROTTLE_WINDOW
    by_account = (LoginAttempt.account == account,)
    waits = []
    if address is None or not known_device:
        start = _since_last_success(db, since, *by_account)
        waits.append(_failure_wait(db, now, ACCOUNT_FREE_FAILURES, start, *by_account))
    if address is not None:
        pair = (*by_account, LoginAttempt.remote_addr == address)
        start = _since_last_success(db, since, *pair)
        waits.append(_failure_wait(db, now, PAIR_FREE_FAILURES, start, *pair))
        by_address = LoginAttempt.remote_addr == address
        waits.append(_failure_wait(db, now, ADDRESS_FREE_FAILURES, since, by_address))
    return max(waits, default=0)


def record_attempt(db: Session, account: str, address: str, succeeded: bool, now: datetime) -> None:
    db.add(
        LoginAttempt(account=account, remote_addr=address, succeeded=succeeded, attempted_at=now)
    )


# --- known devices -----------------------------------------------------------------------
# A browser that has signed in to an account keeps a signed cookie naming it. It never
# authenticates anyone: it only lifts the account-wide throttle for that account.


def _device_signature(payload: str) -> str:
    """Give the HMAC-SHA256 of a known-device payload under a key derived from SECRET_KEY."""
    secret = str(current_app().config["SECRET_KEY"]).encode("utf-8")
    key = hmac.new(secret, b"pyproject.blog.auth known-device cookie", hashlib.sha256).digest()
    digest = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def dump_known_device(entries: list[tuple[int, int]]) -> str:
    """Give the signed cookie value for (user id, issue time) pairs, newest first."""
    payload = "~".join(f"{user_id}:{issued}" for user_id, issued in entries)
    return f"{payload}.{_device_signature(payload)}"


def load_known_device(value: str | None, now: datetime) -> list[tuple[int, int]]:
    """Give the unexpired (user id, issue time) pairs of a cookie we signed, newest first.

    Anything we did not sign (tampered, forged, another site's key) or cannot read counts
    as no cookie at all.
    """
    if not value or len(value) > _KNOWN_DEVICE_MAX_LENGTH or not value.isascii():
        return []
    payload, _, signature = value.rpartition(".")
    if not hmac.compare_digest(signature, _device_signature(payload)):
        return []
    entries = []
    for item in payload.split("~"):
        user_id, _, issued = item.partition(":")
        if not (user_id.isdigit() and issued.isdigit()):
            return []
        entries.append((int(user_id), int(issued)))
    oldest = now.timestamp() - KNOWN_DEVICE_MAX_AGE
    return [entry for entry in entries if entry[1] > oldest][:KNOWN_DEVICE_ACCOUNTS]


def _known_device_cookie(request: Request) -> tuple[str, bool]:
    """Give the cookie's name and whether it is Secure (over HTTPS, or when the site is)."""
    secure = request.is_secure or str(current_app().config["BASE_URL"]).startswith("https://")
    return (f"__Host-{KNOWN_DEVICE_COOKIE}" if secure else KNOWN_DEVICE_COOKIE), secure


def is_known_device(request: Request, user: User, now: datetime) -> bool:
    """Give whether this browser has signed in to `user`'s account before (in the last year)."""
    name, _ = _known_device_cookie(request)
    return any(
        user_id == user.id for user_id, _ in load_known_device(request.cookies.get(name), now)
    )


def remember_device(request: Request, response: Response, user: User, now: datetime) -> None:
    """Put `user` first in this browser's known-device cookie (at most five accounts, a year)."""
    name, secure = _known_device_cookie(request)
    earlier = load_known_device(request.cookies.get(name), now)
    entries = [(user.id, int(now.timestamp()))]
    entries += [entry for entry in earlier if entry[0] != user.id]
    response.set_cookie(
        name,
        dump_known_device(entries[:KNOWN_DEVICE_ACCOUNTS]),
        max_age=KNOWN_DEVICE_MAX_AGE,
        expires=now + timedelta(seconds=KNOWN_DEVICE_MAX_AGE),
        path="/",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


# --- views -------------------------------------------------------------------------------


def register(app: App) -> None:
    """Add the authors' routes and hooks to the app."""
    app.add_route("/setup", setup, methods=["GET", "POST"])
    app.add_route("/login", login, methods=["GET", "POST"])
    app.add_route("/logout", logout, methods=["POST"])
    app.add_route("/account", account, methods=["GET", "POST"])
    app.add_route("/account/password", change_password, methods=["POST"])
    app.add_route("/admin/users", admin_users, methods=["GET", "POST"])
    app.add_route("/admin/users/<int:user_id>/deactivate", deactivate_user, methods=["POST"])
    app.add_route("/admin/users/<int:user_id>/activate", activate_user, methods=["POST"])

    @app.context_processor
    def user_context(request: Request | None) -> dict[str, Any]:
        return {"current_user": current_user(request) if request is not None else None}


def has_users(db: Session) -> bool:
    return db.scalar(select(User.id).limit(1)) is not None


def validate_new_user(db: Session, form: Form) -> dict[str, str]:
    """Give the cleaned fields of a new account, recording errors on the form."""
    username = form.text("username", label="Username", required=True, max_length=40).lower()
    if username and not USERNAME_RE.match(username):
        form.error("username", "Use 3 to 40 lower-case letters, digits, hyphens or underscores.")
    email = form.text("email", label="Email", required=True, max_length=254).lower()
    if email and not EMAIL_RE.match(email):
        form.error("email", "Enter an email address like name@example.com.")
    display_name = form.text("display_name", label="Display name", max_length=80)
    password = check_new_password(form)
    if form.ok:
        taken = db.execute(
            select(User.username, User.email).where(
                or_(User.username == username, User.email == email)
            )
        ).all()
        for row in taken:
            if row.username == username:
                form.error("username", "That username is taken.")
            if row.email == email:
                form.error("email", "That email address is already used.")
    return {
        "username": username,
        "email": email,
        "display_name": display_name,
        "password": password,
    }


def create_user(
    db: Session, *, username: str, email: str, password: str, role: str, display_name: str = ""
) -> User:
    """Add a user (the caller commits)."""
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        password_hash=hash_password(password),
        role=role,
    )
    db.add(user)
    db.flush()
    return user


NEW_USER_FIELDS = ("username", "email", "display_name", "password", "confirm")


def setup(request: Request) -> Any:
    """First run: create the first account, as admin; afterwards this page does not exist."""
    db = get_db(request)
    if request.method == "POST":
        # Two first-run forms sent at once must not make two admins: hold the one-row
        # site_state lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already queues them).
        db.execute(select(SiteState.id).where(SiteState.id == 1).with_for_update())
    if has_users(db):
        raise NotFound()
    form = Form(request.form, NEW_USER_FIELDS)
    if request.method == "POST":
        fields = validate_new_user(db, form)
        if form.ok:
            try:
                user = create_user(db, role="admin", **fields)
                db.commit()
            except IntegrityError:
                db.rollback()
                raise NotFound() from None  # someone else finished setup first
            sign_in(request, user, "setup")
            flash("Welcome! Your blog is ready. Write your first post.", "success")
            response = redirect(url_for("new_post"))
            remember_device(request, response, user, utcnow())
            return response
    status = 422 if form.errors else 200
    return render_template("auth/setup.html", form=form), status


def login(request: Request) -> Any:
    """Sign in with a username or email and a password."""
    next_url = safe_next(request.args.get("next") or request.form.get("next"), url_for("home"))
    form = Form(request.form, ("login", "password"))
    if request.method == "POST":
        return _attempt_sign_in(request, form, next_url)
    if current_user(request) is not None:
        return redirect(next_url)
    if not has_users(get_db(request)):
        return redirect(url_for("setup"))
    return render_template("auth/login.html", form=form, next_url=next_url)


def _find_account(db: Session, typed: str) -> tuple[User | None, str]:
    """Give the user a typed username or email names (or None) and its throttling key."""
    # Control characters name no account (and PostgreSQL refuses NUL in text).
    typed = without_control_characters(typed).strip().lower()[:254]
    user = None
    if typed:
        user = db.scalar(select(User).where(or_(User.username == typed, User.email == typed)))
    # One count per account, whether it is named by username or by email address.
    return user, (f"user:{user.id}" if user is not None else typed)


def _attempt_sign_in(request: Request, form: Form, next_url: str) -> Any:
    """Check a sent sign-in form: sign in and redirect, or answer 429 or 422."""
    db, now, address = get_db(request), utcnow(), request.remote_addr
    user, account = _find_account(db, form.get("login"))
    known = user is not None and is_known_device(request, user, now)
    wait = throttle_wait(db, account, address, now, known_device=known)
    if wait:
        return _throttled_page(form, next_url, wait)
    password = form.get("password")
    if len(password) > PASSWORD_MAX:
        user = None
    ok = verify_password(user.password_hash if user else None, password[:PASSWORD_MAX])
    ok = ok and user is not None and user.is_active
    record_attempt(db, account, address, ok, now)
    if not ok:
        from pyproject.blog import audit  # (it builds on this module)

        typed = without_control_characters(form.get("login")).strip()[:254]
        audit.record(db, user, "sign_in_failed", {"login": typed}, request=request)
        db.commit()
        form.error("login", LOGIN_FAILED)
        form.values["password"] = ""
        return render_template("auth/login.html", form=form, next_url=next_url), 422
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    db.commit()
    if db.get(SecondFactor, user.id) is not None:
        from pyproject.blog.twofactor import ask_for_code  # (it builds on this module)

        return ask_for_code(request, user, next_url)
    sign_in(request, user)
    response = redirect(next_url)
    remember_device(request, response, user, now)
    return response


def _throttled_page(form: Form, next_url: str, wait: int) -> Response:
    """Give the 429 sign-in page, saying how many minutes to wait, with Retry-After."""
    minutes = max(1, (wait + 59) // 60)
    form.error(
        "login",
        f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
    )
    form.values["password"] = ""
    response = Response(render_template("auth/login.html", form=form, next_url=next_url), 429)
    response.headers.set("Retry-After", str(wait))
    return response


def logout(request: Request) -> Response:
    """Sign out: the session is ended on the server, not just forgotten by the browser."""
    from pyproject.blog import audit  # (it builds on this module)

    user = current_user(request)
    if user is not None:
        db = get_db(request)
        audit.record(db, user, "sign_out", request=request)
        db.commit()
    request.session.clear()
    request.context["user"] = None
    flash("You are signed out.", "success")
    return redirect(url_for("home"))


PROFILE_FIELDS = ("display_name", "bio")
PASSWORD_FIELDS = ("current_password", "password", "confirm")


@login_required
def account(request: Request) -> Any:
    """Change display name and bio."""
    user = current_user(request)
    if request.method == "POST":
        form = Form(request.form, PROFILE_FIELDS)
        display_name = form.text("display_name", label="Display name", max_length=80)
        bio = form.text("bio", label="Bio", max_length=2000)
        if form.ok:
            db = get_db(request)
            db.add(user)
            user.display_name, user.bio = display_name, bio
            db.commit()
            flash("Your profile is saved.", "success")
            return redirect(url_for("account"))
        return render_template(
            "auth/account.html", form=form, password_form=Form(None, PASSWORD_FIELDS)
        ), 422
    form = Form({"display_name": user.display_name, "bio": user.bio}, PROFILE_FIELDS)
    return render_template(
        "auth/account.html", form=form, password_form=Form(None, PASSWORD_FIELDS)
    )


@login_required
def change_password(request: Request) -> Any:
    """Change the password (the current one is required); other sessions are ended."""
    user = current_user(request)
    form = Form(request.form, PASSWORD_FIELDS)
    db = get_db(request)
    # Guesses at the current password count as failed sign-ins to the same account, so a
    # stolen session cannot be used to find the password and take the account over.
    account, now = f"user:{user.id}", utcnow()
    wait = throttle_wait(db, account, None, now)
    if wait:
        form.error("current_password", f"Too many wrong passwords. Try again in {wait} seconds.")
    elif not verify_password(user.password_hash, form.get("current_password")[:PASSWORD_MAX]):
        form.error("current_password", "That is not your current password.")
        record_attempt(db, account, request.remote_addr, False, now)
        db.commit()
    password = check_new_password(form)
    if not form.ok:
        form.values.update({name: "" for name in PASSWORD_FIELDS})
        profile = Form({"display_name": user.display_name, "bio": user.bio}, PROFILE_FIELDS)
        page = render_template("auth/account.html", form=profile, password_form=form)
        if wait:
            return Response(page, 429, {"Retry-After": str(wait)})
        return page, 422
    db.add(user)
    user.password_hash = hash_password(password)
    db.commit()
    request.session.rotate()
    store = current_app().session_interface.store
    if hasattr(store, "delete_for_user"):
        store.delete_for_user(user.id)
    flash("Your password is changed. Other devices have been signed out.", "success")
    return redirect(url_for("account"))


@admin_required
def admin_users(request: Request) -> Any:
    """List users and add an author."""
    db = get_db(request)
    form = Form(request.form, (*NEW_USER_FIELDS, "role"))
    status = 200
    if request.method == "POST":
        role = form.get("role") or "author"
        if role not in ("admin", "editor", "author", "contributor"):  # roles.ROLES (#20)
            form.error("role", "Choose administrator, editor, author or contributor.")
        fields = validate_new_user(db, form)
        if form.ok:
            from pyproject.blog import audit  # (it builds on this module)

            user = create_user(db, role=role, **fields)
            detail = {"user": user.username, "role": role}
            audit.record(db, current_user(request), "user_added", detail, request=request)
            db.commit()
            flash(f"Added {user.username}.", "success")
            return redirect(url_for("admin_users"))
        form.values["password"] = form.values["confirm"] = ""
        status = 422
    return users_page(db, form=form, status=status)


INVITE_FIELDS = ("invite_email", "invite_role")


def users_page(
    db: Session, *, form: Form | None = None, invite_form: Form | None = None, status: int = 200
) -> tuple[str, int]:
    """Give /admin/users: the users, the pending invitations, and the forms to add either."""
    users = db.scalars(select(User).order_by(User.created_at, User.id)).all()
    invitations = db.scalars(
        select(Invitation)
        .where(
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.created_at, Invitation.id)
    ).all()
    page = render_template(
        "admin/users.html",
        users=users,
        form=form or Form(None, (*NEW_USER_FIELDS, "role")),
        invite_form=invite_form or Form(None, INVITE_FIELDS),
        invitations=invitations,
    )
    return page, status


def _set_active(request: Request, user_id: int, active: bool) -> Response:
    db = get_db(request)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    if user.id == current_user(request).id:
        raise Forbidden("You cannot deactivate your own account.")
    from pyproject.blog import audit  # (it builds on this module)

    user.is_active = active
    action = "user_activated" if active else "user_deactivated"
    audit.record(db, current_user(request), action, {"user": user.username}, request=request)
    db.commit()
    if not active:
        store = current_app().session_interface.store
        if hasattr(store, "delete_for_user"):
            store.delete_for_user(user.id)
    flash(f"{user.username} is now {'active' if active else 'deactivated'}.", "success")
    return redirect(url_for("admin_users"))


@admin_required
def deactivate_user(request: Request, user_id: int) -> Response:
    """Deactivate a user: their sessions end at once and they cannot sign in."""
    return _set_active(request, user_id, False)


@admin_required
def activate_user(request: Request, user_id: int) -> Response:
    """Let a deactivated user sign in again."""
    return _set_active(request, user_id, True)
