"""Invitations: an administrator invites an author by email; the link lets them join, once.

On /admin/users an administrator types an address; POST /admin/invitations keeps an
`Invitation` (only the SHA-256 of its random token) and queues a message (kind
"invitation") with the link `/join/<token>`. The link shows a form to choose a username,
display name and password (the address is the invitation's); sending it creates the
account, marks the invitation used and signs the new author in. An invitation works once
and for INVITATION_LIFETIME; a newer invitation to the same address, or the revoke
button beside it on /admin/users, ends it sooner.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pyproject.blog import mail
from pyproject.blog.auth import (
    EMAIL_RE,
    INVITE_FIELDS,
    admin_required,
    create_user,
    current_user,
    remember_device,
    sign_in,
    users_page,
    validate_new_user,
)
from pyproject.blog.db import get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import Invitation, User, utcnow
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

INVITATION_LIFETIME = timedelta(days=7)
ROLES = ("author", "admin", "editor", "contributor")  # pyproject/blog/roles.py (#20)
JOIN_FIELDS = ("username", "display_name", "password", "confirm")
_MAX_TOKEN = 100  # tokens are 43 characters; anything much longer is not one


def token_digest(token: str) -> str:
    """Give the SHA-256 (hex) of an invitation token: what the table keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_pending(invitation: Invitation, now: datetime) -> bool:
    """Give whether an invitation can still be used: not used, not revoked, not expired."""
    return (
        invitation.used_at is None and invitation.revoked_at is None and invitation.expires_at > now
    )


def new_invitation(
    db: Session, *, email: str, role: str, invited_by: int | None, now: datetime | None = None
) -> tuple[Invitation, str]:
    """Add an invitation for `email` (the caller commits); give it and its token.

    Earlier invitations to the same address that are still pending are revoked: the
    newest link is the one that works.
    """
    now = now or utcnow()
    db.execute(
        update(Invitation)
        .where(
            Invitation.email == email,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=email,
        token_digest=token_digest(token),
        role=role,
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    db.add(invitation)
    db.flush()
    return invitation, token


def register(app: App) -> None:
    """Add the invitation routes (the form and the list are on /admin/users)."""
    app.add_route("/admin/invitations", create_invitation, methods=["POST"])
    app.add_route(
        "/admin/invitations/<int:invitation_id>/revoke", revoke_invitation, methods=["POST"]
    )
    app.add_route("/join/<token>", join, methods=["GET", "POST"])


def _check_invite(db: Session, form: Form) -> tuple[str, str]:
    """Give the invitation form's address and role, recording errors on the form."""
    email = form.text(
        "invite_email", label="Address to invite", required=True, max_length=254
    ).lower()
    # An address mail can carry (no line breaks, plain ASCII) that accounts accept too.
    if email and "invite_email" not in form.errors and not _sendable(email):
        form.error("invite_email", "Enter an email address like name@example.com.")
    role = form.get("invite_role") or "author"
    if role not in ROLES:
        form.error("invite_role", "Choose administrator, editor, author or contributor.")
    if form.ok and db.scalar(select(User.id).where(User.email == email)) is not None:
        form.error("invite_email", "That address already has an account.")
    return email, role


def _sendable(email: str) -> bool:
    try:
        mail.check_address(email)
    except mail.InvalidMail:
        return False
    return EMAIL_RE.match(email) is not None


def _header_name(user: User) -> str:
    """Give the user's display name if it may go into a subject (a display name may hold a
    line break), else the username (which always may)."""
    try:
        return mail.check_header_text(user.name, "name", limit=mail.MAX_NAME)
    except mail.InvalidMail:
        return user.username


@admin_required
def create_invitation(request: Request) -> Any:
    """Invite someone by email to write here; the message is sent by the job worker."""
    db = get_db(request)
    form = Form(request.form, INVITE_FIELDS)
    email, role = _check_invite(db, form)
    if not form.ok:
        return users_page(db, invite_form=form, status=422)
    inviter = current_user(request)
    invitation, token = new_invitation(db, email=email, role=role, invited_by=inviter.id)
    site = str(current_app().config.get("SITE_NAME") or "the blog")
    try:
        mail.queue_mail(
            db,
            kind="invitation",
            to=email,
            object_id=invitation.id,
            subject=f"{_header_name(inviter)} invites you to write on {site}",
            template="invitation",
            token=token,
            inviter=inviter.name,
            role=role,
            expires_at=invitation.expires_at,
        )
    except mail.InvalidMail as error:  # e.g. a SITE_NAME too long for a subject
        db.rollback()
        form.error("invite_email", f"No invitation could be made: {error}.")
        return users_page(db, invite_form=form, status=422)
    db.commit()
    flash(f"An invitation to {email} is on its way; its link works for 7 days.", "success")
    return redirect(url_for("admin_users"))


@admin_required
def revoke_invitation(request: Request, invitation_id: int) -> Response:
    """Revoke a pending invitation: its link stops working."""
    db = get_db(request)
    invitation = db.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound("There is no such invitation.")
    if is_pending(invitation, utcnow()):
        invitation.revoked_at = utcnow()
        db.commit()
        flash(f"The invitation to {invitation.email} is revoked.", "success")
    else:
        flash(f"The invitation to {invitation.email} was no longer pending.", "error")
    return redirect(url_for("admin_users"))


def _private(page: str, status: int = 200) -> Response:
    response = Response(page, status)
    response.headers.set("Cache-Control", "no-store")
    return response


def join(request: Request, token: str) -> Any:
    """Accept an invitation: choose a username and password, and become an author."""
    db, now = get_db(request), utcnow()
    invitation = None
    if len(token) <= _MAX_TOKEN:
        query = select(Invitation).where(Invitation.token_digest == token_digest(token))
        if request.method == "POST":
            # Held until the commit: of two forms sent at once, the second finds it used.
            query = query.with_for_update(of=Invitation)
        invitation = db.scalar(query)
    if invitation is None or not is_pending(invitation, now):
        db.rollback()
        return _private(render_template("auth/join_invalid.html"), 410)
    form = Form(request.form, JOIN_FIELDS)
    form.values["email"] = invitation.email
    status = 200
    if request.method == "POST":
        fields = validate_new_user(db, form)
        if form.ok:
            try:
                user = create_user(db, role=invitation.role, **fields)
                invitation.used_at, invitation.used_by = now, user.id
                db.commit()
            except IntegrityError:  # the username or address was taken a moment ago
                db.rollback()
                form.error("username", "That username or address was taken a moment ago.")
            else:
                sign_in(request, user)
                flash(f"Welcome, {user.name}! Your account is ready.", "success")
                response = redirect(url_for("new_post"))
                remember_device(request, response, user, now)
                return response
        form.values["password"] = form.values["confirm"] = ""
        status = 422
    page = render_template("auth/join.html", form=form, invitation=invitation, token=token)
    return _private(page, status)
