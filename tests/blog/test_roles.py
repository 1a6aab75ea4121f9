"""Tests for pyproject/blog/roles.py: the four roles, changing them, and requiring 2FA."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from blog.conftest import (
    Cast,
    Clock,
    create_author,
    csrf_token,
    edit_post,
    form_of,
    login,
    make_blog_app,
    signup_admin,
    slug_of,
    write_post,
)
from blog.test_comments import send_comment
from blog.test_twofactor import turn_on
from pyproject.blog import roles
from pyproject.blog.db import get_database
from pyproject.blog.models import AuditEntry, Post, SentMessage, User
from pyproject.lib import App
from pyproject.lib.testing import TestClient

PASSWORD = "role passphrase 1"


def person(cast: Cast, username: str, role: str) -> TestClient:
    """Add an account with a role through /admin/users and give its signed-in client."""
    assert create_author(cast.admin, username, password=PASSWORD, role=role).status_code == 303
    client = cast.app.test_client()
    assert login(client, username, PASSWORD).status_code == 303
    return client


def role_of(cast: Cast, username: str) -> str:
    with get_database(cast.app).read() as db:
        return db.scalar(select(User.role).where(User.username == username))


def post_row(cast: Cast, slug: str) -> Post:
    with get_database(cast.app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        db.expunge_all()
        return post


def test_an_admin_adds_accounts_with_each_role(cast: Cast) -> None:
    for role in roles.ROLES:
        person(cast, f"new-{role}", role)
        assert role_of(cast, f"new-{role}") == role
    page = cast.admin.get("/admin/users")
    options = page.html.select('form[action="/admin/users"] select[name="role"] option')
    assert [o["value"] for o in options] == list(roles.ROLES)


def test_an_admin_changes_a_role_and_the_audit_log_says_so(cast: Cast) -> None:
    page = cast.admin.get("/admin/users")
    with get_database(cast.app).read() as db:
        bob = db.scalar(select(User.id).where(User.username == "bob"))
    values = form_of(page, f'form[action="/admin/users/{bob}/role"]')
    assert values["role"] == "author"
    values["role"] = "editor"
    assert cast.admin.post(f"/admin/users/{bob}/role", data=values).status_code == 303
    assert role_of(cast, "bob") == "editor"
    with get_database(cast.app).read() as db:
        line = db.scalar(select(AuditEntry).where(AuditEntry.action == "role_changed"))
        assert json.loads(line.detail) == {"user": "bob", "from": "author", "to": "editor"}
        assert line.actor_name == "admin"


def test_a_role_change_is_refused_for_oneself_an_unknown_role_or_a_non_admin(cast: Cast) -> None:
    with get_database(cast.app).read() as db:
        ids = dict(db.execute(select(User.username, User.id)).all())
    token = csrf_token(cast.admin)
    own = cast.admin.post(
        f"/admin/users/{ids['admin']}/role", data={"csrf_token": token, "role": "author"}
    )
    assert own.status_code == 403
    bad = cast.admin.post(
        f"/admin/users/{ids['bob']}/role", data={"csrf_token": token, "role": "owner"}
    )
    assert bad.status_code == 422
    missing = cast.admin.post("/admin/users/999/role", data={"csrf_token": token, "role": "author"})
    assert missing.status_code == 404
    by_author = cast.author.post(
        f"/admin/users/{ids['bob']}/role",
        data={"csrf_token": csrf_token(cast.author), "role": "admin"},
    )
    assert by_author.status_code == 403
    assert (role_of(cast, "admin"), role_of(cast, "bob")) == ("admin", "author")


def test_an_editor_edits_and_publishes_anyone_s_posts(cast: Cast) -> None:
    editor = person(cast, "edna", "editor")
    draft = slug_of(write_post(cast.author, title="Alice's draft", status="draft"))
    assert (
        "Alice&#39;s draft" in editor.get("/drafts").text
        or "Alice's draft" in editor.get("/drafts").text
    )
    assert editor.get(f"/posts/{draft}").status_code == 200
    assert edit_post(editor, draft, title="Edited by Edna", status="published").status_code == 303
    post = post_row(cast, draft)
    assert (post.title, post.status) == ("Edited by Edna", "published")
    assert editor.get("/admin/users").status_code == 403  # editors do not run the site


def test_an_author_cannot_edit_another_s_post(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Alice's own"))
    assert cast.other.get(f"/posts/{slug}/edit").status_code == 403


def test_an_editor_moderates_every_comment_and_an_author_only_their_own(
    cast: Cast, clock: Clock
) -> None:
    editor = person(cast, "edna", "editor")
    slug = slug_of(write_post(cast.author, title="Commented"))
    sent = send_comment(cast.app.test_client(), slug, clock, body="A held comment.")
    assert sent.status_code == 303
    assert "A held comment." in editor.get("/comments").text
    assert "A held comment." not in cast.other.get("/comments").text


def test_a_contributor_s_save_never_publishes(cast: Cast) -> None:
    contributor = person(cast, "carl", "contributor")
    saved = write_post(contributor, title="Carl wants it out", status="published")
    slug = slug_of(saved)
    post = post_row(cast, slug)
    assert post.status == "draft" and post.published_at is None
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    scheduled = write_post(
        contributor, title="Carl later", status="published", publish_at="2099-01-01T09:00"
    )
    assert post_row(cast, slug_of(scheduled)).status == "draft"


@dataclass
class Strict:
    """A blog whose REQUIRE_SECOND_FACTOR is "admins": a first admin with app codes, then
    a second admin and an author signed in with their passwords only."""

    app: App
    admin: TestClient
    author: TestClient


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Strict]:
    app = make_blog_app(tmp_path, overrides={"REQUIRE_SECOND_FACTOR": "admins"})
    first = app.test_client()
    signup_admin(first)
    turn_on(first)
    clients = []
    for name, role in (("root", "admin"), ("ann", "author")):
        assert create_author(first, name, password=PASSWORD, role=role).status_code == 303
        clients.append(app.test_client())
        assert login(clients[-1], name, PASSWORD).status_code == 303
    yield Strict(app, *clients)
    get_database(app).dispose()


def test_an_admin_without_a_second_factor_is_sent_to_enrol(strict: Strict) -> None:
    admin = strict.admin
    for path in ("/drafts", "/admin/users", "/posts/new", "/"):
        answer = admin.get(path)
        assert answer.status_code == 303 and answer.location == "/account/security", path
    page = admin.get("/account/security")
    assert page.status_code == 200
    assert "asks your account for a second factor" in page.text
    refused = admin.post("/posts", data={"csrf_token": csrf_token(admin, "/account/security")})
    assert refused.status_code == 403
    assert strict.author.get("/drafts").status_code == 200  # authors are not asked
    turn_on(admin)
    assert admin.get("/admin/users").status_code == 200


def test_signing_out_is_allowed_while_enrolment_is_required(strict: Strict) -> None:
    admin = strict.admin
    token = csrf_token(admin, "/account/security")
    assert admin.post("/logout", data={"csrf_token": token}).status_code == 303
    assert admin.get("/drafts").location.startswith("/login")


def test_everyone_must_enrol_when_the_rule_says_everyone(tmp_path: Path) -> None:
    app = make_blog_app(tmp_path, overrides={"REQUIRE_SECOND_FACTOR": "everyone"})
    try:
        admin = app.test_client()
        signup_admin(admin)
        turn_on(admin)
        create_author(admin, "ann", password=PASSWORD)
        ann = app.test_client()
        assert login(ann, "ann", PASSWORD).status_code == 303
        assert ann.get("/drafts").location == "/account/security"
    finally:
        get_database(app).dispose()


@pytest.mark.parametrize(
    ("setting", "rule"),
    [("off", "none"), ("admins", "admins"), ("everyone", "everyone"), ("bogus", "none")],
)
def test_the_rule_is_read_leniently(make_app, setting: str, rule: str) -> None:
    from pyproject.lib.app import _current_app

    app = make_app(REQUIRE_SECOND_FACTOR=setting)
    token = _current_app.set(app)
    try:
        assert roles.second_factor_rule() == rule
    finally:
        _current_app.reset(token)


@pytest.mark.parametrize(
    ("role", "words"), [("editor", "an editor"), ("contributor", "a contributor")]
)
def test_an_invitation_can_give_each_role(cast: Cast, role: str, words: str) -> None:
    from blog.test_invitations import invite, join, parts, queued_link

    assert invite(cast.admin, "newcomer@example.com", role=role).status_code == 303
    with get_database(cast.app).read() as db:
        row = db.scalar(select(SentMessage).where(SentMessage.kind == "invitation"))
    text, _html = parts(email.message_from_bytes(row.message, policy=policy.default))
    assert f"as {words}." in text
    invitee = cast.app.test_client()
    link = queued_link(cast.app)
    assert f"as {words}" in invitee.get(link).text
    assert join(invitee, link).status_code == 303
    assert role_of(cast, "newcomer") == role


def test_the_rule_set_on_the_settings_page_applies_at_once(cast: Cast) -> None:
    values = form_of(cast.admin.get("/admin/settings"), 'form[action="/admin/settings"]')
    values["second_factor"] = "everyone"
    assert cast.admin.post("/admin/settings", data=values).status_code == 303
    assert cast.author.get("/drafts").location == "/account/security"
    assert cast.admin.get("/admin/settings").location == "/account/security"
    with get_database(cast.app).read() as db:
        logged = db.scalar(select(AuditEntry.detail).where(AuditEntry.action == "settings_changed"))
    assert "second_factor" in logged
