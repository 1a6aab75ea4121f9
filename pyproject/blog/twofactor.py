"""A second factor at sign-in: codes from an authenticator app (TOTP), and recovery codes.

At `/account/security` a signed-in author turns it on: the page shows a new secret as a
QR code drawn on the server (inline SVG by `segno`: no script, no image service) and as
text, and it is on only once a code from the app checks out (`pyotp`, RFC 6238, 30 s
steps, one step either side for clocks that drift). Ten recovery codes are then shown,
once; only an HMAC of each is kept, and each works once.

Signing in to such an account asks for a code after the password: the password step
leaves only a note in the session (which account, since when, where to go next), and the
session is signed in only by a right code. Wrong codes count as failed sign-ins of the
account, from that address, so they are throttled exactly as passwords are. A code is
accepted only for a time step after the last one used, so a code seen once cannot be
replayed. Turning it off needs the password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import pyotp
import segno
from markupsafe import Markup
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pyproject.blog import audit, auth, passkeys, roles
from pyproject.blog.db import get_db
from pyproject.blog.devices import devices_of
from pyproject.blog.forms import Form
from pyproject.blog.models import RecoveryCode, SecondFactor, User, utcnow
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

RECOVERY_CODES = 10
PENDING_KEY = "pending_second_factor"  # in the session between the two steps of sign-in
ENROL_KEY = "enrolling_totp"  # a new secret, until a code confirms it
PENDING_SECONDS = 5 * 60  # the password step is worth this long
ISSUER = "PyProject"
WRONG_CODE = "That code is not right, or it was used already. Try the newest one."


# --- codes ---------------------------------------------------------------------------------------


def _code_digest(code: str) -> str:
    key = hmac.new(
        current_app().config["SECRET_KEY"].encode(), b"recovery codes", hashlib.sha256
    ).digest()
    return hmac.new(key, _normalise(code).encode(), hashlib.sha256).hexdigest()


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_recovery_codes(db: Session, user: User) -> list[str]:
    """Replace the account's recovery codes with ten new ones; give them (shown once)."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # nothing to misread
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.add(RecoveryCode(user_id=user.id, digest=_code_digest(raw), used_at=None))
    return codes


def second_factor(db: Session, user: User) -> SecondFactor | None:
    return db.get(SecondFactor, user.id)


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """Give the time step a six-digit code is right for (now, or one step either side)."""
    code = _normalise(code)
    if len(code) != 6 or not code.isascii() or not code.isdigit():  # (not "１２３４５６")
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    for offset in (0, -1, 1):
        at = now + offset * totp.interval
        if hmac.compare_digest(totp.at(at), code):
            return int(at // totp.interval)
    return None


def check_code(db: Session, user: User, code: str) -> bool:
    """Give whether `code` is a right, unused app code or recovery code; use it up if so."""
    factor = second_factor(db, user)
    if factor is None:
        return False
    step = _matching_step(factor.totp_secret, code)
    if step is not None:
        # Atomically: a code is good once, even with two requests racing.
        used = db.execute(
            update(SecondFactor)
            .where(SecondFactor.user_id == user.id, SecondFactor.last_step < step)
            .values(last_step=step)
        )
        return used.rowcount == 1
    digest = _code_digest(code)
    used = db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.digest == digest,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return used.rowcount == 1


def remaining_recovery_codes(db: Session, user: User) -> int:
    rows = db.scalars(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )
    return len(list(rows))


# --- signing in ------------------------------------------------------------------------------


def ask_for_code(request: Request, user: User, next_url: str) -> Response:
    """After a right password: remember who is signing in, and ask for the second factor."""
    session = request.session
    session.rotate()
    session[PENDING_KEY] = {"user": user.id, "at": int(utcnow().timestamp()), "next": next_url}
    return redirect(url_for("login_code"))


def _pending_user(request: Request) -> tuple[User | None, str]:
    pending = request.session.get(PENDING_KEY) if request.session is not None else None
    if not isinstance(pending, dict) or not isinstance(pending.get("user"), int):
        return None, ""
    if utcnow().timestamp() - int(pending.get("at", 0)) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None, ""
    user = get_db(request).get(User, pending["user"])
    if user is None or not user.is_active:
        return None, ""
    next_url = auth.safe_next(str(pending.get("next") or ""), url_for("drafts"))
    return user, next_url


def login_code(request: Request) -> Any:
    """The sign-in's second step: a code from the app, or a recovery code."""
    user, next_url = _pending_user(request)
    if user is None:
        flash("Sign in again: the first step has expired.", "info")
        return redirect(url_for("login"))
    form = Form(request.form if request.method == "POST" else None, ("code",))
    if request.method == "GET":
        return render_template("auth/code.html", form=form)
    db, now, address = get_db(request), utcnow(), request.remote_addr
    account = f"user:{user.id}"
    wait = auth.throttle_wait(db, account, address, now)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        form.error("code", f"Too many wrong codes. Try again in {minutes} minutes.")
        response = Response(render_template("auth/code.html", form=form), 429)
        response.headers.set("Retry-After", str(wait))
        return response
    code = form.text("code", label="Code", required=True, max_length=20)
    ok = form.ok and check_code(db, user, code)
    auth.record_attempt(db, account, address, ok, now)
    if not ok:
        audit.record(db, user, "second_factor_failed", request=request)
    db.commit()
    if not ok:
        form.errors.pop("code", None)
        form.error("code", WRONG_CODE)
        form.values["code"] = ""
        return render_template("auth/code.html", form=form), 422
    request.session.pop(PENDING_KEY, None)
    auth.sign_in(request, user, "password and code")
    response = redirect(next_url)
    auth.remember_device(request, response, user, now)
    return response


# --- the account's security page -------------------------------------------------------------


def qr_svg(uri: str) -> Markup:
    """Give the provisioning URI as an inline SVG QR code (drawn here; nothing to fetch)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    labelled = svg.replace("<svg ", '<svg role="img" aria-label="QR code of the secret" ', 1)
    # segno's own SVG of a URI we made (base32 secret, our names): nothing from a visitor.
    return Markup(labelled)  # noqa: S704  # nosec B704


def _enrolment(request: Request, user: User) -> dict[str, Any]:
    secret = request.session.get(ENROL_KEY)
    if not isinstance(secret, str) or len(secret) != 32:
        secret = pyotp.random_base32(32)
        request.session[ENROL_KEY] = secret
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return {"secret": grouped, "qr": qr_svg(uri)}


def _security_page(request: Request, form: Form, status: int = 200, **extra: Any) -> Any:
    user = auth.current_user(request)
    db = get_db(request)
    factor = second_factor(db, user)
    context = {
        "form": form,
        "factor": factor,
        "remaining": remaining_recovery_codes(db, user) if factor else 0,
        "recovery_codes": None,
        "devices": devices_of(request, user),
        "passkeys": passkeys.passkeys_of(db, user),  # (#20 roles: passkeys.py)
        "passkey_form": Form(None, passkeys.PASSKEY_FIELDS),
        "must_enrol": roles.must_enrol(request, user),
        **extra,
    }
    if factor is None:
        context["enrolment"] = _enrolment(request, user)
    response = Response(render_template("auth/security.html", **context), status)
    response.headers.set("Cache-Control", "no-store")  # a secret or recovery codes may show
    return response


@auth.login_required
def security(request: Request) -> Any:
    return _security_page(request, Form(None, ("code", "password")))


@auth.login_required
def enable_totp(request: Request) -> Any:
    """Turn the app's codes on, once a code for the new secret checks out."""
    user = auth.current_user(request)
    db = get_db(request)
    form = Form(request.form, ("code",))
    secret = request.session.get(ENROL_KEY)
    if second_factor(db, user) is not None:
        flash("Codes from an app are already on.", "info")
        return redirect(url_for("account_security"))
    step = _matching_step(secret, form.get("code")) if isinstance(secret, str) else None
    if step is None:
        form.error("code", "That code does not match the secret shown. Try the newest one.")
        form.values["code"] = ""
        return _security_page(request, form, 422)
    db.add(SecondFactor(user_id=user.id, totp_secret=secret, enabled_at=utcnow(), last_step=step))
    codes = new_recovery_codes(db, user)
    audit.record(db, user, "totp_enabled", request=request)
    db.commit()
    request.session.pop(ENROL_KEY, None)
    return _security_page(request, Form(None, ("code", "password")), recovery_codes=codes)


@auth.login_required
def new_codes(request: Request) -> Any:
    """Ten new recovery codes (the old ones stop working), for the account's password."""
    user = auth.current_user(request)
    db = get_db(request)
    form = Form(request.form, ("password",))
    if second_factor(db, user) is None:
        return redirect(url_for("account_security"))
    if not auth.verify_password(user.password_hash, form.get("password")[: auth.PASSWORD_MAX]):
        form.error("password", "That is not your password.")
        return _security_page(request, form, 422)
    codes = new_recovery_codes(db, user)
    audit.record(db, user, "recovery_codes_renewed", request=request)
    db.commit()
    return _security_page(request, Form(None, ("code", "password")), recovery_codes=codes)


@auth.login_required
def disable_totp(request: Request) -> Any:
    """Turn the second factor off, for the account's password."""
    user = auth.current_user(request)
    db = get_db(request)
    form = Form(request.form, ("password",))
    if not auth.verify_password(user.password_hash, form.get("password")[: auth.PASSWORD_MAX]):
        form.error("password", "That is not your password.")
        return _security_page(request, form, 422)
    db.execute(delete(SecondFactor).where(SecondFactor.user_id == user.id))
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(db, user, "totp_disabled", request=request)
    db.commit()
    flash("Sign-in asks for your password only now.", "success")
    return redirect(url_for("account_security"))


def register(app: App) -> None:
    app.add_route("/login/code", login_code, methods=["GET", "POST"])
    app.add_route("/account/security", security, endpoint="account_security")
    app.add_route("/account/security/totp", enable_totp, methods=["POST"])
    app.add_route("/account/security/recovery-codes", new_codes, methods=["POST"])
    app.add_route("/account/security/totp/off", disable_totp, methods=["POST"])
