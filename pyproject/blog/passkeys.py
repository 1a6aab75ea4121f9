"""Passkeys (WebAuthn): register them at /account/security, and sign in with one alone.

The browser makes a key pair on the device (a phone, a security key, the system's
password manager) for this site; we keep only its public key, the authenticator's id for
it, and its signature counter. Checking is `webauthn` (py_webauthn): the challenge we gave
(single-use, kept in the session for five minutes), the origin and relying party (this
request's host, which the framework has already checked against ALLOWED_HOSTS), user
verification (a PIN or a fingerprint: a passkey is two factors by itself), the signature,
and the counter. An assertion whose counter does not grow beyond the last one seen (a
replay, a cloned key) is refused, and the counter is moved on atomically, so two
requests racing with the same assertion cannot both sign in.

Signing in with a passkey needs JavaScript (static/js/passkeys.js: the page asks the
browser, then posts the answer in an ordinary form); the password form works without it.
Failed passkey sign-ins count as failed sign-ins of the account and address, so they are
throttled as passwords are, and they go to the audit log.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from pyproject.blog import audit, auth, roles
from pyproject.blog.db import get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import Passkey, User, utcnow
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
from pyproject.lib.exceptions import NotFound
from pyproject.lib.response import json_response

NAME_MAX = 60
PASSKEYS_MAX = 20  # per account
CREDENTIAL_MAX = 16_000  # characters of the JSON a browser sends back
CHALLENGE_SECONDS = 5 * 60
REGISTER_KEY = "_passkey_register"  # in the session: the challenge of a registration
SIGN_IN_KEY = "_passkey_sign_in"  # ... and of a sign-in
REFUSED = "That passkey could not be used to sign in. Try again, or use your password."
TRANSPORTS = {t.value for t in AuthenticatorTransport}


def relying_party(request: Request) -> tuple[str, str]:
    """Give (RP ID, origin): this request's host name and scheme://host[:port]."""
    host = request.host.lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.strip("[]"), f"{request.scheme}://{host}"


def passkeys_of(db: Session, user: User) -> list[Passkey]:
    return list(db.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)))


def _new_challenge(request: Request, key: str) -> bytes:
    challenge = secrets.token_bytes(32)
    request.session[key] = {
        "challenge": bytes_to_base64url(challenge),
        "at": int(utcnow().timestamp()),
    }
    return challenge


def _take_challenge(request: Request, key: str) -> bytes | None:
    """Give the challenge given to this session, once (None when missing or expired)."""
    kept = request.session.pop(key, None) if request.session is not None else None
    if not isinstance(kept, dict) or not isinstance(kept.get("challenge"), str):
        return None
    if utcnow().timestamp() - int(kept.get("at", 0)) > CHALLENGE_SECONDS:
        return None
    try:
        return base64url_to_bytes(kept["challenge"])
    except ValueError:
        return None


def _credential(form: Form) -> dict[str, Any] | None:
    """Give the credential JSON the page posted, as a dict, or None if it is not one."""
    raw = form.get("credential")
    if not raw or len(raw) > CREDENTIAL_MAX:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("rawId"), str) else None


def _options_response(options: Any) -> Response:
    """Give WebAuthn options as JSON that no cache keeps (it holds a challenge)."""
    response = json_response(json.loads(options_to_json(options)))
    response.headers.set("Cache-Control", "no-store")
    return response


# --- registering -------------------------------------------------------------------------------


@auth.login_required
def registration_options(request: Request) -> Response:
    """The options for navigator.credentials.create(): JSON, with a fresh challenge."""
    user = auth.current_user(request)
    db = get_db(request)
    rp_id, _ = relying_party(request)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=str(current_app().config.get("SITE_NAME") or "PyProject"),
        user_name=user.username,
        user_id=str(user.id).encode(),
        user_display_name=user.name,
        challenge=_new_challenge(request, REGISTER_KEY),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(key.credential_id))
            for key in passkeys_of(db, user)
        ],
    )
    return _options_response(options)


def _security_page(request: Request, form: Form, status: int) -> Response:
    from pyproject.blog.twofactor import _security_page as page  # (it lists our passkeys)

    return page(request, Form(None, ("code", "password")), status, passkey_form=form)


PASSKEY_FIELDS = ("name", "credential", "password")


@auth.login_required
def add_passkey(request: Request) -> Any:
    """Keep the passkey the browser made, under the name typed, once its answer checks out."""
    user = auth.current_user(request)
    db = get_db(request)
    form = Form(request.form, PASSKEY_FIELDS)
    name = form.text("name", label="Name", required=True, max_length=NAME_MAX)
    credential = _credential(form)
    challenge = _take_challenge(request, REGISTER_KEY)
    count = db.scalar(select(func.count()).where(Passkey.user_id == user.id)) or 0
    if count >= PASSKEYS_MAX:
        form.error("name", f"An account keeps at most {PASSKEYS_MAX} passkeys. Remove one first.")
    verified = None
    if form.ok:
        if credential is None or challenge is None:
            form.error("name", "The browser's answer was missing or too old. Try again.")
        else:
            rp_id, origin = relying_party(request)
            try:
                verified = verify_registration_response(
                    credential=credential,
                    expected_challenge=challenge,
                    expected_rp_id=rp_id,
                    expected_origin=origin,
                    require_user_verification=True,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError) as error:
                form.error("name", f"The passkey could not be checked: {error}"[:300])
    form.values["credential"] = ""
    if verified is None:
        return _security_page(request, form, 422)
    transports = credential.get("response", {}).get("transports") or []
    passkey = Passkey(
        user_id=user.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        transports=" ".join(t for t in transports if t in TRANSPORTS)[:200],
        created_at=utcnow(),
    )
    db.add(passkey)
    audit.record(db, user, "passkey_added", {"name": name}, request=request)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        form.error("name", "That passkey is registered already.")
        return _security_page(request, form, 422)
    # Like turning app codes on, making a passkey here (user verified) meets the rule.
    request.session[roles.SIGNED_IN_WITH] = "passkey"
    flash(f"Your passkey “{name}” is added: you can sign in with it alone.", "success")
    return redirect(url_for("account_security"))


@auth.login_required
def remove_passkey(request: Request, passkey_id: int) -> Any:
    """Forget one of the account's passkeys, for the account's password."""
    user = auth.current_user(request)
    db = get_db(request)
    passkey = db.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        raise NotFound("There is no such passkey.")
    form = Form(request.form, PASSKEY_FIELDS)
    if not auth.verify_password(user.password_hash, form.get("password")[: auth.PASSWORD_MAX]):
        form.error("password", "That is not your password.")
        form.values["password"] = ""
        return _security_page(request, form, 422)
    db.execute(delete(Passkey).where(Passkey.id == passkey.id, Passkey.user_id == user.id))
    audit.record(db, user, "passkey_removed", {"name": passkey.name}, request=request)
    db.commit()
    flash(f"The passkey “{passkey.name}” is removed.", "success")
    return redirect(url_for("account_security"))


# --- signing in --------------------------------------------------------------------------------


def sign_in_options(request: Request) -> Response:
    """The options for navigator.credentials.get(): any passkey of this site (discoverable)."""
    rp_id, _ = relying_party(request)
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=_new_challenge(request, SIGN_IN_KEY),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return _options_response(options)


def _refused(request: Request, form: Form, next_url: str, status: int = 422) -> Any:
    login_form = Form(None, ("login", "password"))
    login_form.error("login", REFUSED)
    page = render_template("auth/login.html", form=login_form, next_url=next_url)
    return page, status


def sign_in_with_passkey(request: Request) -> Any:
    """Check the browser's answer to our challenge; sign in the passkey's account."""
    form = Form(request.form, ("credential", "next"))
    next_url = auth.safe_next(form.get("next"), url_for("home"))
    db, now, address = get_db(request), utcnow(), request.remote_addr
    credential = _credential(form)
    challenge = _take_challenge(request, SIGN_IN_KEY)
    if credential is None or challenge is None:
        return _refused(request, form, next_url)
    passkey = db.scalar(select(Passkey).where(Passkey.credential_id == credential["rawId"][:1400]))
    user = db.get(User, passkey.user_id) if passkey is not None else None
    account = f"user:{user.id}" if user is not None else "passkey"
    wait = auth.throttle_wait(db, account, address, now)
    if wait:
        response = Response(_refused(request, form, next_url)[0], 429)
        response.headers.set("Retry-After", str(wait))
        return response
    verified = None
    reason = "unknown passkey"
    if passkey is not None and user is not None and user.is_active:
        rp_id, origin = relying_party(request)
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as error:
            reason = str(error)[:200]
    if verified is not None:
        # Move the counter on only from the value checked: a racing twin finds it moved.
        moved = db.execute(
            update(Passkey)
            .where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
            .values(sign_count=verified.new_sign_count, last_used_at=now)
        )
        if moved.rowcount != 1:
            verified, reason = None, "used twice at once"
    auth.record_attempt(db, account, address, verified is not None, now)
    if verified is None:
        audit.record(
            db,
            user,
            "passkey_failed",
            {"reason": reason, "passkey": passkey.name if passkey else ""},
            request=request,
        )
        db.commit()
        return _refused(request, form, next_url)
    db.commit()
    auth.sign_in(request, user, "passkey")
    response = redirect(next_url)
    auth.remember_device(request, response, user, now)
    return response


def register(app: App) -> None:
    app.add_route("/account/security/passkeys/options", registration_options, methods=["POST"])
    app.add_route("/account/security/passkeys", add_passkey, methods=["POST"])
    app.add_route(
        "/account/security/passkeys/<int:passkey_id>/delete", remove_passkey, methods=["POST"]
    )
    app.add_route("/login/passkey/options", sign_in_options, methods=["POST"])
    app.add_route("/login/passkey", sign_in_with_passkey, methods=["POST"])
