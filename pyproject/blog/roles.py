"""Roles (admin, editor, author, contributor), who may do what, and the second-factor rule.

- admin: everything, and the only role that runs the site (users, settings, imports...).
- editor: edits and publishes anyone's posts and pages, moderates every comment, and
  reviews contributors' posts.
- author: writes and publishes their own posts.
- contributor: writes their own drafts and submits them for review
  (pyproject/blog/review.py); an editor or admin publishes them.

The rule for second factors ("none", "admins" or "everyone") is the site setting
`second_factor` of /admin/settings where that exists, else REQUIRE_SECOND_FACTOR. An
account it covers that has neither app codes nor a passkey is sent to /account/security
after signing in, and can do nothing else until it has one.
"""

from __future__ import annotations

from typing import Any

from pyproject.blog import audit, auth
from pyproject.blog.db import get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import Post, SecondFactor, User
from pyproject.lib import App, Request, Response, current_app, flash, redirect, url_for
from pyproject.lib.exceptions import Forbidden, NotFound

ROLES = {
    "admin": "Administrator",
    "editor": "Editor",
    "author": "Author",
    "contributor": "Contributor",
}
SECOND_FACTOR_RULES = ("none", "admins", "everyone")
# Where an account that must enrol may still go: the page to enrol, its forms, signing out.
SIGNED_IN_WITH = "_signed_in_with"  # in the session: how it was signed in (auth.sign_in)
ENROL_PATHS = ("/account/security", "/account/sessions/", "/logout", "/login")


def role_label(role: str) -> str:
    return ROLES.get(role, role)


def is_editor(user: User | None) -> bool:
    """Give whether the user edits and publishes anyone's posts (editors and admins)."""
    return user is not None and user.role in ("admin", "editor")


def can_edit_post(user: User | None, post: Post) -> bool:
    """Give whether the user may change the post: its author, an editor or an admin."""
    return user is not None and (is_editor(user) or user.id == post.author_id)


def can_publish(user: User | None) -> bool:
    """Give whether the user's own saves may publish (everyone but contributors)."""
    return user is not None and user.role in ("admin", "editor", "author")


def can_review(user: User | None) -> bool:
    return is_editor(user)


# --- second factors -------------------------------------------------------------------------


def second_factor_rule() -> str:
    """Give who must use a second factor: "none", "admins" or "everyone"."""
    value = ""
    try:
        from pyproject.blog import settings as site_settings  # (#17, where installed)

        value = site_settings.site_settings().require_second_factor
    except (ImportError, AttributeError, RuntimeError):
        value = str(current_app().config.get("REQUIRE_SECOND_FACTOR", "none"))
    value = value.strip().lower()
    value = "none" if value in ("off", "") else value
    return value if value in SECOND_FACTOR_RULES else "none"


def second_factor_required(user: User) -> bool:
    """Give whether the rule asks this account for a second factor."""
    rule = second_factor_rule()
    return rule == "everyone" or (rule == "admins" and user.is_admin)


def must_enrol(request: Request, user: User) -> bool:
    """Give whether this signed-in session must add a second factor before anything else.

    Not when the account has app codes (its password sign-ins asked for one), nor when
    this session was signed in with a passkey; an account with passkeys only that signed
    in with its password is asked too (to sign in with the passkey, or add app codes).
    """
    if not second_factor_required(user):
        return False
    if request.session is not None and request.session.get(SIGNED_IN_WITH) == "passkey":
        return False
    return get_db(request).get(SecondFactor, user.id) is None


def _send_to_enrol(request: Request) -> Response | None:
    """Before each request: an account that must enrol sees only the enrolment page."""
    if request.session is None or not request.cookies:
        return None
    path = request.path
    if path.startswith(ENROL_PATHS) or path.startswith("/static/"):
        return None
    user = auth.current_user(request)
    if user is None or not must_enrol(request, user):
        return None
    if request.method in ("GET", "HEAD"):
        flash(
            "This site asks your account for a second factor. Add a passkey or turn on "
            "codes from an app to go on.",
            "info",
        )
        return redirect(url_for("account_security"))
    raise Forbidden("Add a second factor at /account/security first.")


# --- changing roles -------------------------------------------------------------------------


@auth.admin_required
def change_role(request: Request, user_id: int) -> Any:
    """An admin gives an account another role (not their own: a site keeps its admin)."""
    db = get_db(request)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    admin = auth.current_user(request)
    form = Form(request.form, ("role",))
    role = form.get("role")
    if user.id == admin.id:
        raise Forbidden("You cannot change your own role; another administrator can.")
    if role not in ROLES:
        form.error("role", "Choose one of: " + ", ".join(ROLES.values()) + ".")
        page, _ = auth.users_page(db)
        return page, 422
    if role != user.role:
        before = user.role
        user.role = role
        audit.record(
            db,
            admin,
            "role_changed",
            {"user": user.username, "from": before, "to": role},
            request=request,
        )
        db.commit()
        flash(f"{user.username} is now {role_label(role).lower()}.", "success")
    return redirect(url_for("admin_users"))


def register(app: App) -> None:
    app.add_route("/admin/users/<int:user_id>/role", change_role, methods=["POST"])
    app.before_request(_send_to_enrol)
    app.jinja_env.globals["roles"] = ROLES
    app.jinja_env.filters["role_label"] = role_label
    app.jinja_env.tests["editor"] = is_editor
