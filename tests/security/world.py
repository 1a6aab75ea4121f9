"""A small blog built through the real forms, with one object for each state-changing route.

Every POST route has its own target here (a post to edit, one to delete, one in the trash
to restore, another to purge, a user to deactivate, one to activate...), so a request that
succeeds on one route changes nothing another route's test looks at.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from blog.conftest import (
    create_author,
    csrf_token,
    delete_post,
    edit_post,
    login,
    signup_admin,
    slug_of,
    write_post,
)
from PIL import Image
from sqlalchemy import select

from pyproject.blog import invitations, recovery
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, JobRecord, Media, Post, User
from pyproject.lib import App
from pyproject.lib.testing import TestClient

PASSWORD = "author passphrase 1"
NEW_PASSWORD = "a new passphrase 2"
AUTHORS = ("bob", "carol", "dave", "erin")


FAILED_JOB_NAME = "pyproject.blog.trash.purge_trash_job"
FAILED_JOBS = {"retry": "0f" * 16, "discard": "1e" * 16}


@dataclass
class World:
    """The app, its signed-in clients and the targets of every POST route."""

    app: App
    clients: dict[str, TestClient]
    user_ids: dict[str, int]
    slugs: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # reset and invitation links (#14)
    media: dict[str, int] = field(default_factory=dict)  # the admin's pictures, by route (#15)
    imports: dict[str, int] = field(default_factory=dict)  # checked web imports, by route (#16)
    comments: dict[str, int] = field(default_factory=dict)  # comment and post ids (#18)

    def token(self, who: str) -> str:
        """Give the CSRF token of a client's session."""
        if who not in self.tokens:
            self.tokens[who] = csrf_token(self.clients[who])
        return self.tokens[who]

    def revision(self, slug: str) -> int:
        with get_database(self.app).read() as db:
            return db.scalar(select(Post.revision).where(Post.slug == slug))


def build_world(app: App) -> World:
    """Set up the blog: an admin, four authors (carol deactivated), posts for each route."""
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    for name in AUTHORS:
        assert create_author(admin, name, password=PASSWORD).status_code == 303
    with get_database(app).read() as db:
        user_ids = {name: id_ for name, id_ in db.execute(select(User.username, User.id))}
    token = csrf_token(admin, "/admin/users")
    response = admin.post(
        f"/admin/users/{user_ids['carol']}/deactivate", data={"csrf_token": token}
    )
    assert response.status_code == 303
    erin = app.test_client()
    assert login(erin, "erin", PASSWORD).status_code == 303
    slugs = {}
    for key, title in (
        ("edit", "Edited here"),
        ("autosave", "Autosaved here"),
        ("delete", "Deleted here"),
        ("history", "History here"),
        ("restore", "Restored here"),
        ("purge", "Purged here"),
    ):
        slugs[key] = slug_of(write_post(admin, title=title, body=f"The first text of {key}."))
    assert edit_post(admin, slugs["history"], body="The second text.").status_code == 303
    for key in ("restore", "purge"):
        assert delete_post(admin, slugs[key]).status_code == 303
    with get_database(app).write() as db:  # jobs whose retries ran out, for /admin/jobs
        for job_id in FAILED_JOBS.values():
            db.add(JobRecord(id=job_id, name=FAILED_JOB_NAME, state="failed", error="Boom"))
    links = _reset_and_invitation_links(app, admin)
    media = {
        key: _upload_picture(app, admin, shade) for key, shade in (("alt", 10), ("delete", 20))
    }
    anonymous = app.test_client()
    clients = {"admin": admin, "erin": erin, "anonymous": anonymous}
    for client in clients.values():
        client.get("/login" if client is anonymous else "/")  # a token; flashes read
    imports = {key: _checked_import(app, admin, key) for key in ("run", "cancel")}
    comments = _held_comment(app, slugs["edit"])
    return World(
        app,
        clients,
        user_ids,
        slugs,
        links=links,
        media=media,
        imports=imports,
        comments=comments,
    )


def _held_comment(app: App, slug: str) -> dict[str, int]:
    """Give a reader's held comment on a post (for /comments/moderate) and the post's id."""
    with get_database(app).write() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        comment = Comment(post_id=post_id, name="Reader", body_md="Hi", body_html="<p>Hi</p>")
        db.add(comment)
        db.flush()
        return {"held": comment.id, "post": post_id}


def _checked_import(app: App, client: TestClient, key: str) -> int:
    """Upload a one-post Markdown zip to /admin/import: a checked import waiting (#16)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(f"posts/{key}.md", f"---\ntitle: Imported {key}\n---\nText.\n")
    response = client.post(
        "/admin/import",
        data={"csrf_token": csrf_token(client, "/admin/import"), "on_conflict": "skip"},
        files={"file": (f"{key}.zip", out.getvalue(), "application/zip")},
    )
    assert response.status_code == 303, response.text
    return int(response.location.rstrip("/").rsplit("/", 1)[1])


def _upload_picture(app: App, client: TestClient, shade: int) -> int:
    """Upload a small picture through /media; give its id (for the alt and delete routes)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (shade, shade, shade)).save(out, "PNG")
    response = client.post(
        "/media",
        data={"csrf_token": csrf_token(client, "/media"), "alt": ""},
        files={"file": (f"{shade}.png", out.getvalue(), "image/png")},
    )
    assert response.status_code == 303
    with get_database(app).read() as db:
        return db.scalar(select(Media.id).order_by(Media.id.desc()))


def _reset_and_invitation_links(app: App, admin: TestClient) -> dict[str, str]:
    """Give frank's reset link, an invitation to accept and one to revoke (#14)."""
    assert create_author(admin, "frank", password=PASSWORD).status_code == 303
    secret = str(app.config["SECRET_KEY"])
    with get_database(app).write() as db:
        frank = db.scalar(select(User).where(User.username == "frank"))
        links = {"reset": f"/reset/{recovery.make_reset_token(frank, secret=secret)}"}
        _, token = invitations.new_invitation(
            db, email="joiner@example.com", role="author", invited_by=None
        )
        links["join"] = f"/join/{token}"
        revoked, _ = invitations.new_invitation(
            db, email="revoked@example.com", role="author", invited_by=None
        )
        links["revoke"] = f"/admin/invitations/{revoked.id}/revoke"
    return links


# Each POST route: who sends it and a request that would succeed with a valid token.
def post_targets(world: World) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Give, for every POST rule, (client, path, form data without the token)."""
    ids, slugs = world.user_ids, world.slugs
    new_user = {
        "username": "newbie",
        "email": "newbie@example.com",
        "display_name": "",
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    edit = {
        "title": "Edited by the attack",
        "body": "Changed.",
        "summary": "",
        "tags": "",
        "slug": slugs["edit"],
        "status": "published",
        "publish_at": "",
        "base_revision": str(world.revision(slugs["edit"])),
    }
    return {
        "/setup": ("anonymous", "/setup", {**new_user, "username": "usurper"}),
        "/login": ("anonymous", "/login", {"login": "dave", "password": PASSWORD, "next": ""}),
        "/logout": ("admin", "/logout", {}),
        "/account": ("erin", "/account", {"display_name": "Erin Changed", "bio": "Changed."}),
        # Two-step sign-in (#20): erin has none on, so a valid request changes nothing.
        "/login/code": ("anonymous", "/login/code", {"code": "123456"}),
        "/account/security/totp": ("erin", "/account/security/totp", {"code": "000000"}),
        "/account/security/recovery-codes": (
            "erin",
            "/account/security/recovery-codes",
            {"password": PASSWORD},
        ),
        "/account/security/totp/off": (
            "erin",
            "/account/security/totp/off",
            {"password": PASSWORD},
        ),
        # Devices (#20): a session id that is nobody's (404), and every other session.
        "/account/sessions/<public_id>/end": (
            "erin",
            "/account/sessions/0000000000000000/end",
            {},
        ),
        "/account/sessions/end-others": ("erin", "/account/sessions/end-others", {}),
        "/account/password": (
            "erin",
            "/account/password",
            {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        ),
        "/admin/users": ("admin", "/admin/users", {**new_user, "role": "admin"}),
        "/admin/users/<int:user_id>/deactivate": (
            "admin",
            f"/admin/users/{ids['bob']}/deactivate",
            {},
        ),
        "/admin/users/<int:user_id>/activate": (
            "admin",
            f"/admin/users/{ids['carol']}/activate",
            {},
        ),
        "/posts": (
            "admin",
            "/posts",
            {"title": "Written by the attack", "body": "Text.", "status": "published"},
        ),
        "/posts/preview": ("admin", "/posts/preview", {"title": "P", "body": "**b**"}),
        "/posts/autosave": ("admin", "/posts/autosave", {"title": "Autosaved", "body": "Text."}),
        "/posts/<slug:slug>/edit": ("admin", f"/posts/{slugs['edit']}/edit", edit),
        "/posts/<slug:slug>/autosave": (
            "admin",
            f"/posts/{slugs['autosave']}/autosave",
            {"title": "Autosaved", "body": "Autosaved text."},
        ),
        "/posts/<slug:slug>/delete": ("admin", f"/posts/{slugs['delete']}/delete", {}),
        "/posts/<slug:slug>/revisions/<int:number>/restore": (
            "admin",
            f"/posts/{slugs['history']}/revisions/1/restore",
            {},
        ),
        "/posts/<slug:slug>/restore": ("admin", f"/posts/{slugs['restore']}/restore", {}),
        "/posts/<slug:slug>/purge": ("admin", f"/posts/{slugs['purge']}/purge", {}),
        "/admin/jobs/<job_id>/retry": ("admin", f"/admin/jobs/{FAILED_JOBS['retry']}/retry", {}),
        "/admin/jobs/<job_id>/discard": (
            "admin",
            f"/admin/jobs/{FAILED_JOBS['discard']}/discard",
            {},
        ),
        "/admin/outbox/test": ("admin", "/admin/outbox/test", {}),
        "/subscribe": ("anonymous", "/subscribe", {"email": "world.reader@example.com"}),
        "/reset": ("anonymous", "/reset", {"email": "dave@example.com"}),
        "/reset/<token>": (
            "anonymous",
            world.links["reset"],
            {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        ),
        "/admin/invitations": (
            "admin",
            "/admin/invitations",
            {"invite_email": "invited@example.com", "invite_role": "author"},
        ),
        "/admin/invitations/<int:invitation_id>/revoke": ("admin", world.links["revoke"], {}),
        "/join/<token>": (
            "anonymous",
            world.links["join"],
            {"username": "joiner", "display_name": "", "password": PASSWORD, "confirm": PASSWORD},
        ),
        # The table's forms are url-encoded: the control upload carries no file and gets 422
        # past the token check (test_csrf.CONTROL_OUTCOME); tests/blog/test_media.py uploads.
        "/media": ("admin", "/media", {"alt": "Forged"}),
        "/media/<int:media_id>/alt": (
            "admin",
            f"/media/{world.media['alt']}/alt",
            {"alt": "Changed by the attack"},
        ),
        "/media/<int:media_id>/delete": ("admin", f"/media/{world.media['delete']}/delete", {}),
        # export and import (#16): downloads change nothing; the url-encoded control upload
        # carries no file and gets 422 past the token (tests/blog/test_importing.py uploads)
        "/admin/export": ("admin", "/admin/export", {}),
        "/account/export": ("erin", "/account/export", {}),
        "/admin/import": ("admin", "/admin/import", {"on_conflict": "skip"}),
        "/admin/import/<int:run_id>/run": (
            "admin",
            f"/admin/import/{world.imports['run']}/run",
            {},
        ),
        "/admin/import/<int:run_id>/cancel": (
            "admin",
            f"/admin/import/{world.imports['cancel']}/cancel",
            {},
        ),
        # comments (#18): moderation and a post's comments setting
        "/comments/moderate": (
            "admin",
            "/comments/moderate",
            {"action": "approve", "ids": str(world.comments["held"])},
        ),
        "/comments/posts/<int:post_id>/setting": (
            "admin",
            f"/comments/posts/{world.comments['post']}/setting",
            {"comments": "closed"},
        ),
        # personal API tokens (#20): a new one for erin; revoking one that is nobody's (404)
        "/account/tokens": ("erin", "/account/tokens", {"name": "Forged", "scope_read": "on"}),
        "/account/tokens/<int:token_id>/revoke": ("erin", "/account/tokens/999999/revoke", {}),
        # roles, review and passkeys (#20): dave made an editor; the admin's own published
        # post "submitted" (a flash: it is published already); answers to a post nobody
        # submitted (404); passkey options (a challenge in the session); answers with no
        # credential (422) and removing a passkey that is nobody's (404)
        "/admin/users/<int:user_id>/role": (
            "admin",
            f"/admin/users/{ids['dave']}/role",
            {"role": "editor"},
        ),
        "/posts/<slug:slug>/submit": ("admin", f"/posts/{slugs['edit']}/submit", {}),
        "/review/<int:post_id>/approve": (
            "admin",
            f"/review/{world.comments['post']}/approve",
            {"note": "", "publish_at": ""},
        ),
        "/review/<int:post_id>/changes": (
            "admin",
            f"/review/{world.comments['post']}/changes",
            {"note": "Forged."},
        ),
        "/login/passkey/options": ("anonymous", "/login/passkey/options", {}),
        "/login/passkey": ("anonymous", "/login/passkey", {"credential": "", "next": ""}),
        "/account/security/passkeys/options": ("erin", "/account/security/passkeys/options", {}),
        "/account/security/passkeys": (
            "erin",
            "/account/security/passkeys",
            {"name": "Forged", "credential": ""},
        ),
        "/account/security/passkeys/<int:passkey_id>/delete": (
            "erin",
            "/account/security/passkeys/999999/delete",
            {"password": PASSWORD},
        ),
        # site structure (#17): settings (an incomplete form: 422 past the token;
        # tests/blog/test_settings.py saves), a menu link, a series, a pin, a post's options
        "/admin/settings": ("admin", "/admin/settings", {"title": "Forged"}),
        "/admin/navigation": (
            "admin",
            "/admin/navigation",
            {"action": "add", "menu": "header", "label": "Forged", "target_kind": "archive"},
        ),
        "/series": ("admin", "/series", {"title": "Forged series", "slug": "", "description": ""}),
        "/series/<slug:slug>/edit": (
            "admin",
            "/series/no-such-series/edit",
            {"action": "details", "title": "Forged"},
        ),
        "/posts/<slug:slug>/pin": ("admin", f"/posts/{slugs['edit']}/pin", {}),
        "/posts/<slug:slug>/options": (
            "admin",
            f"/posts/{slugs['edit']}/options",
            {"noindex": "on", "canonical_override": ""},
        ),
        # the author's picture (#23): none chosen, none before (only a flash changes)
        "/account/picture": ("erin", "/account/picture", {"picture": ""}),
        # the federation page (#19): a block added; answers about followers, blocks and
        # paused domains that do not exist (404)
        "/admin/federation/blocks": (
            "admin",
            "/admin/federation/blocks",
            {"kind": "domain", "value": "forged.example"},
        ),
        "/admin/federation/blocks/<int:block_id>/remove": (
            "admin",
            "/admin/federation/blocks/999999/remove",
            {},
        ),
        "/admin/federation/domains/resume": (
            "admin",
            "/admin/federation/domains/resume",
            {"domain": "never-paused.example"},
        ),
        "/admin/federation/followers/<int:follower_id>/approve": (
            "admin",
            "/admin/federation/followers/999999/approve",
            {},
        ),
        "/admin/federation/followers/<int:follower_id>/remove": (
            "admin",
            "/admin/federation/followers/999999/remove",
            {},
        ),
    }


POST_RULES = (
    "/setup",
    "/login",
    "/logout",
    "/account",
    "/login/code",
    "/account/security/totp",
    "/account/security/recovery-codes",
    "/account/security/totp/off",
    "/account/sessions/<public_id>/end",
    "/account/sessions/end-others",
    "/account/password",
    "/admin/users",
    "/admin/users/<int:user_id>/deactivate",
    "/admin/users/<int:user_id>/activate",
    "/posts",
    "/posts/preview",
    "/posts/autosave",
    "/posts/<slug:slug>/edit",
    "/posts/<slug:slug>/autosave",
    "/posts/<slug:slug>/delete",
    "/posts/<slug:slug>/revisions/<int:number>/restore",
    "/posts/<slug:slug>/restore",
    "/posts/<slug:slug>/purge",
    "/admin/jobs/<job_id>/retry",
    "/admin/jobs/<job_id>/discard",
    "/admin/outbox/test",
    "/subscribe",
    "/reset",
    "/reset/<token>",
    "/admin/invitations",
    "/admin/invitations/<int:invitation_id>/revoke",
    "/join/<token>",
    "/media",
    "/media/<int:media_id>/alt",
    "/media/<int:media_id>/delete",
    "/admin/export",
    "/account/export",
    "/admin/import",
    "/admin/import/<int:run_id>/run",
    "/admin/import/<int:run_id>/cancel",
    "/comments/moderate",
    "/comments/posts/<int:post_id>/setting",
    "/account/tokens",
    "/account/tokens/<int:token_id>/revoke",
    "/admin/users/<int:user_id>/role",
    "/posts/<slug:slug>/submit",
    "/review/<int:post_id>/approve",
    "/review/<int:post_id>/changes",
    "/login/passkey/options",
    "/login/passkey",
    "/account/security/passkeys/options",
    "/account/security/passkeys",
    "/account/security/passkeys/<int:passkey_id>/delete",
    "/admin/settings",
    "/admin/navigation",
    "/series",
    "/series/<slug:slug>/edit",
    "/posts/<slug:slug>/pin",
    "/posts/<slug:slug>/options",
    "/account/picture",
    "/admin/federation/blocks",
    "/admin/federation/blocks/<int:block_id>/remove",
    "/admin/federation/domains/resume",
    "/admin/federation/followers/<int:follower_id>/approve",
    "/admin/federation/followers/<int:follower_id>/remove",
)

# POST routes registered with csrf=False, each for a reason (test_csrf.py checks that these
# are all there are, and that each still refuses what it must):
# - /unsubscribe/<token>: RFC 8058 one-click unsubscribe. Mail clients POST to the link
#   in the List-Unsubscribe header with no cookie and no token; the signed token in the
#   URL is the proof, and all it can do is unsubscribe the address it was made for.
# - /webmention: the W3C Webmention endpoint (#18). Other sites' servers POST source and
#   target with no session; all a request can do is queue a check of a public page that
#   must link to a published post (400 otherwise), rate limited per source host, and
#   what it finds is held or listed by name. test_csrf checks it changes no content.
# - /posts/<slug:slug>/comments (#18): readers' comment form, on pages the page cache
#   keeps for everyone, so it carries no session's token; it carries a token signed with
#   SECRET_KEY naming the post and the time the page was made, checked for signature,
#   post and age (3 s to a day): without it nothing is stored (422).
# - /comments/<int:comment_id>/edit and /delete (#18): a comment's writer, who has no
#   session, changes their comment for 15 minutes; the proof is their signed cookie
#   (SameSite=Lax, so a cross-site POST does not carry it) and a per-comment token
#   signed with SECRET_KEY shown only to them (404 or 403 otherwise).
# - /api/posts, /api/media (and PATCH, DELETE /api/posts/<slug>), /micropub and
#   /micropub/media (#20): the write API and Micropub take only a personal token in the
#   Authorization header, which a page on another site cannot make a browser send; a
#   session cookie is never accepted there (401), so a forged request carries nothing
#   that lets it write (tests/security/test_api_tokens.py).
# - /comments/<int:comment_id>/quiet/<token> (#18): the one-click stop (RFC 8058) in a
#   reply notification, posted by mail clients with no cookie; the token signed with
#   SECRET_KEY for that comment is the proof, and all it can do is stop reply mail to the
#   address that comment gave.
# - /ap/inbox, /ap/blog/inbox, /ap/users/<username>/inbox (#19): ActivityPub inboxes.
#   Other servers post with no session; the proof is the HTTP Signature, which must
#   verify against the key of the actor that sent it (401 and nothing stored otherwise),
#   so a browser's cookies give a forged request nothing (tests/blog/test_activitypub.py).
CSRF_EXEMPT = (
    "/unsubscribe/<token>",
    "/webmention",
    "/posts/<slug:slug>/comments",
    "/comments/<int:comment_id>/edit",
    "/comments/<int:comment_id>/delete",
    "/api/posts",
    "/api/media",
    "/micropub",
    "/micropub/media",
    "/comments/<int:comment_id>/quiet/<token>",
    "/ap/inbox",
    "/ap/blog/inbox",
    "/ap/users/<username>/inbox",
)
# Not POST, and exempt for the same reason as the write API's POSTs above.
CSRF_EXEMPT_OTHER_METHODS = ("/api/posts/<slug:slug>",)  # PATCH and DELETE (#20)
