"""Authors: first-run setup, sign in and out, throttling, accounts, and user administration."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.db import get_db
from pyproject.errors import Forbidden, NotFound
from pyproject.forms import Form, without_control_characters
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
from pyproject.lib.http import is_safe_redirect
from pyproject.models import LoginAttempt, SiteState, User, utcnow

# OWASP's Argon2id recommendation (m=19 MiB, t=2, p=1); each hash takes ~20 ms here.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
# Verified against when the account does not exist, so both answers take the same time.
_DUMMY_HASH = HASHER.hash("no such user: this only spends the same time as a real check")

PASSWORD_MIN, PASSWORD_MAX = 8, 1024
USERNAME_RE = re.compile(r"^[a-z0-9_-]{3,40}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
THROTTLE_WINDOW = timedelta(minutes=15)
FIRST_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 15 * 60


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


def current_user(request: Request) -> User | None:
    """Give the signed-in, active user of this request (loaded once), or None."""
    if "user" in request.context:
        return request.context["user"]
    user = None
    session = request.session
    if session is not None and request.cookies:
        user_id = session.get("user_id")
        if isinstance(user_id, int):
            user = get_db(request).get(User, user_id)
            if user is not None and not user.is_active:
                session.clear()
                user = None
    request.context["user"] = user
    return user


def sign_in(request: Request, user: User) -> None:
    """Start a signed-in session under a new id (the pre-login id becomes worthless)."""
    session = request.session
    session.rotate()
    session.pop("_csrf", None)  # a token seen before signing in is worth nothing after
    session["user_id"] = user.id
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


def throttle_wait(db: Session, account: str, address: str | None, now: datetime) -> int:
    """Give how many seconds this account (or address, if given) must wait to try again."""
    since = now - THROTTLE_WINDOW
    last_success = db.scalar(
        select(func.max(LoginAttempt.attempted_at)).where(
            LoginAttempt.account == account, LoginAttempt.succeeded.is_(True)
        )
    )
    account_since = max(since, last_success) if last_success else since
    waits = []
    checks = [(LoginAttempt.account, account, account_since, ACCOUNT_FREE_FAILURES)]
    if address is not None:
        checks.append((LoginAttempt.remote_addr, address, since, ADDRESS_FREE_FAILURES))
    for column, value, start, free in checks:
        count, latest = db.execute(
            select(func.count(), func.max(LoginAttempt.attempted_at)).where(
                column == value,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.attempted_at > start,
            )
        ).one()
        wait = _wait_after(count, free)
        if wait and latest is not None:
            remaining = (latest + timedelta(seconds=wait) - now).total_seconds()
            waits.append(max(0, int(remaining + 0.999)))
    return max(waits, default=0)


def record_attempt(db: Session, account: str, address: str, succeeded: bool, now: datetime) -> None:
    db.add(
        LoginAttempt(account=account, remote_addr=address, succeeded=succeeded, attempted_at=now)
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
            sign_in(request, user)
            flash("Welcome! Your blog is ready. Write your first post.", "success")
            return redirect(url_for("new_post"))
    status = 422 if form.errors else 200
    return render_template("auth/setup.html", form=form), status


def login(request: Request) -> Any:
    """Sign in with a username or email and a password."""
    next_url = safe_next(request.args.get("next") or request.form.get("next"), url_for("home"))
    form = Form(request.form, ("login", "password"))
    if current_user(request) is not None and request.method == "GET":
        return redirect(next_url)
    db = get_db(request)
    if request.method == "GET" and not has_users(db):
        return redirect(url_for("setup"))
    status = 200
    if request.method == "POST":
        # Control characters name no account (and PostgreSQL refuses NUL in text).
        typed = without_control_characters(form.get("login")).strip().lower()[:254]
        password = form.get("password")
        now = utcnow()
        user = None
        if typed:
            user = db.scalar(select(User).where(or_(User.username == typed, User.email == typed)))
        # One count per account, whether it is named by username or by email address.
        account = f"user:{user.id}" if user is not None else typed
        wait = throttle_wait(db, account, request.remote_addr, now)
        if wait:
            minutes = max(1, (wait + 59) // 60)
            form.error(
                "login",
                f"Too many failed sign-ins. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
            )
            form.values["password"] = ""
            response = Response(
                render_template("auth/login.html", form=form, next_url=next_url), 429
            )
            response.headers.set("Retry-After", str(wait))
            return response
        if len(password) > PASSWORD_MAX:
            user = None
        ok = verify_password(user.password_hash if user else None, password[:PASSWORD_MAX])
        ok = ok and user is not None and user.is_active
        record_attempt(db, account, request.remote_addr, ok, now)
        if ok:
            if HASHER.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            db.commit()
            sign_in(request, user)
            return redirect(next_url)
        db.commit()
        form.error("login", "That username or email and password do not match an account.")
        form.values["password"] = ""
        status = 422
    return render_template("auth/login.html", form=form, next_url=next_url), status


def logout(request: Request) -> Response:
    """Sign out: the session is ended on the server, not just forgotten by the browser."""
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
        if role not in ("author", "admin"):
            form.error("role", "Choose author or admin.")
        fields = validate_new_user(db, form)
        if form.ok:
            user = create_user(db, role=role, **fields)
            db.commit()
            flash(f"Added {user.username}.", "success")
            return redirect(url_for("admin_users"))
        form.values["password"] = form.values["confirm"] = ""
        status = 422
    users = db.scalars(select(User).order_by(User.created_at, User.id)).all()
    return render_template("admin/users.html", users=users, form=form), status


def _set_active(request: Request, user_id: int, active: bool) -> Response:
    db = get_db(request)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    if user.id == current_user(request).id:
        raise Forbidden("You cannot deactivate your own account.")
    user.is_active = active
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
