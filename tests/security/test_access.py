"""Access control: who may reach what. Anonymous visitors are sent to sign in, another author
gets 403 or 404 (410 for what was public and is now in the trash), admins may do everything,
and nothing another author tries changes a byte of the post it aimed at.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from blog.conftest import (
    Cast,
    csrf_token,
    delete_post,
    edit_post,
    make_blog_app,
    make_cast,
    slug_of,
    write_post,
)
from PIL import Image
from sqlalchemy import select, text

from pyproject.blog.db import get_database
from pyproject.blog.models import Media, Post, Revision, User, utcnow
from pyproject.lib import App

from .checks import changed_tables, snapshot

# Every route and method, by who may use it ("<slug>" and "<n>" are filled in per case).
PUBLIC = {
    ("GET", "/"),
    ("GET", "/posts"),
    ("GET", "/posts/<slug:slug>"),
    ("GET", "/tags"),
    ("GET", "/tags/<tag>"),
    ("GET", "/authors/<username>"),
    ("GET", "/search"),
    ("GET", "/feed.atom"),
    ("GET", "/feed.rss"),
    ("GET", "/tags/<tag>/feed.atom"),
    ("GET", "/authors/<username>/feed.atom"),
    ("GET", "/sitemap.xml"),
    ("GET", "/sitemaps/<int:number>.xml"),
    ("GET", "/robots.txt"),
    ("GET", "/privacy"),  # what the statistics count (#22)
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # by address, not by account: METRICS_ALLOW (tests/blog/test_metrics.py)
    ("GET", "/api/posts"),
    ("GET", "/api/posts/<slug:slug>"),
    ("GET", "/api/tags"),
    ("GET", "/api/search"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/code"),  # the second step of sign-in: only after a right password
    ("POST", "/login/code"),
    ("POST", "/login/passkey/options"),  # signing in with a passkey alone (#20)
    ("POST", "/login/passkey"),
    ("POST", "/logout"),
    ("GET", "/subscribe"),
    ("POST", "/subscribe"),
    ("GET", "/subscribe/confirm/<token>"),
    ("GET", "/unsubscribe/<token>"),
    ("POST", "/unsubscribe/<token>"),
    ("POST", "/webmention"),  # a public protocol endpoint (#18): other sites post to it
    # comments (#18): readers post with the form's signed token; a writer edits or deletes
    # their own through their signed cookie (anyone else: 404)
    ("POST", "/posts/<slug:slug>/comments"),
    ("GET", "/posts/<slug:slug>/comments/older"),
    ("GET", "/posts/<slug:slug>/comments/<int:comment_id>/reply"),
    ("GET", "/posts/<slug:slug>/comments.atom"),
    ("GET", "/comments/<int:comment_id>/edit"),
    ("POST", "/comments/<int:comment_id>/edit"),
    ("POST", "/comments/<int:comment_id>/delete"),
    ("GET", "/comments/<int:comment_id>/quiet/<token>"),  # the stop link in reply mail
    ("POST", "/comments/<int:comment_id>/quiet/<token>"),
    ("GET", "/reset"),
    ("POST", "/reset"),
    ("GET", "/reset/<token>"),
    ("POST", "/reset/<token>"),
    ("GET", "/join/<token>"),
    ("POST", "/join/<token>"),
    ("GET", "/site-style/<fingerprint>.css"),  # the site settings' stylesheet (#17)
    ("GET", "/<slug:slug>"),  # a standalone page (#17)
    ("GET", "/series/<slug:slug>"),  # a series and its feed (#17)
    ("GET", "/series/<slug:slug>/feed.atom"),
    ("GET", "/api/openapi.json"),  # the API's OpenAPI document (#20)
    # The fediverse (#19): discovery, actors, objects and collections are public; the
    # inboxes are posted to by other servers, signed (their own rules: test_activitypub).
    ("GET", "/.well-known/webfinger"),
    ("GET", "/.well-known/host-meta"),
    ("GET", "/.well-known/nodeinfo"),
    ("GET", "/nodeinfo/2.1"),
    ("GET", "/ap/blog"),
    ("GET", "/ap/blog/outbox"),
    ("GET", "/ap/blog/followers"),
    ("GET", "/ap/blog/following"),
    ("GET", "/ap/users/<username>/outbox"),
    ("GET", "/ap/users/<username>/followers"),
    ("GET", "/ap/users/<username>/following"),
    ("GET", "/ap/objects/<int:post_id>"),
    ("POST", "/ap/inbox"),
    ("POST", "/ap/blog/inbox"),
    ("POST", "/ap/users/<username>/inbox"),
}
AUTHOR_ONLY = {
    ("GET", "/account/tokens"),  # personal API tokens (#20): the account's own only
    ("POST", "/account/tokens"),
    ("POST", "/account/tokens/<int:token_id>/revoke"),
    ("GET", "/drafts"),
    ("GET", "/stats"),  # statistics (#22): an author's own posts, an admin's whole site
    ("GET", "/stats/<table>.csv"),
    ("GET", "/posts/<slug:slug>/stats"),
    ("GET", "/posts/<slug:slug>/stats/<table>.csv"),
    ("GET", "/trash"),
    ("GET", "/posts/new"),
    ("GET", "/pages/new"),  # a standalone page (#17): the posts' editor
    ("GET", "/series"),  # series (#17): writers group their own posts
    ("POST", "/series"),
    ("GET", "/series/<slug:slug>/edit"),
    ("POST", "/series/<slug:slug>/edit"),
    ("POST", "/posts/<slug:slug>/pin"),  # pins and per-post options (#17)
    ("POST", "/posts/<slug:slug>/options"),
    ("GET", "/account"),
    ("POST", "/account"),
    ("GET", "/account/picture"),  # the picture beside the bio (#23)
    ("POST", "/account/picture"),
    ("POST", "/account/password"),
    ("GET", "/account/security"),  # two-step sign-in (#20)
    ("POST", "/account/security/totp"),
    ("POST", "/account/security/recovery-codes"),
    ("POST", "/account/security/totp/off"),
    ("POST", "/account/security/passkeys/options"),  # passkeys (#20)
    ("POST", "/account/security/passkeys"),
    ("POST", "/account/security/passkeys/<int:passkey_id>/delete"),
    ("POST", "/account/sessions/<public_id>/end"),  # devices (#20): the account's own only
    ("POST", "/account/sessions/end-others"),
    ("POST", "/posts"),
    ("POST", "/posts/preview"),
    ("POST", "/posts/autosave"),
    ("GET", "/posts/<slug:slug>/edit"),
    ("POST", "/posts/<slug:slug>/edit"),
    ("POST", "/posts/<slug:slug>/autosave"),
    ("POST", "/posts/<slug:slug>/delete"),
    ("GET", "/posts/<slug:slug>/revisions"),
    ("GET", "/posts/<slug:slug>/revisions/<int:number>"),
    ("POST", "/posts/<slug:slug>/revisions/<int:number>/restore"),
    ("POST", "/posts/<slug:slug>/restore"),
    ("POST", "/posts/<slug:slug>/purge"),
    ("GET", "/media"),
    ("POST", "/media"),
    ("POST", "/media/<int:media_id>/alt"),
    ("POST", "/media/<int:media_id>/delete"),
    ("GET", "/account/export"),  # export and import (#16)
    ("POST", "/account/export"),
    # comments (#18): moderation of the author's own posts' comments (admins: all)
    ("GET", "/comments"),
    ("POST", "/comments/moderate"),
    ("POST", "/comments/posts/<int:post_id>/setting"),
    ("POST", "/posts/<slug:slug>/submit"),  # roles and review (#20): own posts only
}
# A personal API token only (#20): no token is 401, and so is a session cookie alone
# (tests/security/test_api_tokens.py tries each with scopes, cookies and bad input).
TOKEN_ONLY = {
    ("POST", "/api/posts"),
    ("GET", "/api/posts/<slug:slug>/source"),
    ("PATCH", "/api/posts/<slug:slug>"),
    ("DELETE", "/api/posts/<slug:slug>"),
    ("POST", "/api/media"),
    ("GET", "/micropub"),
    ("POST", "/micropub"),
    ("POST", "/micropub/media"),
}
# Editors and admins only (#20): the review queue (tests/security/test_access_roles.py).
EDITOR_ONLY = {
    ("GET", "/review"),
    ("GET", "/review/<int:post_id>"),
    ("POST", "/review/<int:post_id>/approve"),
    ("POST", "/review/<int:post_id>/changes"),
}
ADMIN_ONLY = {
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/<int:user_id>/deactivate"),
    ("POST", "/admin/users/<int:user_id>/activate"),
    ("GET", "/admin/jobs"),
    ("POST", "/admin/jobs/<job_id>/retry"),
    ("POST", "/admin/jobs/<job_id>/discard"),
    ("GET", "/admin/outbox"),
    ("POST", "/admin/outbox/test"),
    ("GET", "/admin/subscribers"),
    ("GET", "/admin/subscribers.csv"),
    ("POST", "/admin/invitations"),
    ("POST", "/admin/invitations/<int:invitation_id>/revoke"),
    ("GET", "/admin/export"),  # export and import (#16)
    ("POST", "/admin/export"),
    ("GET", "/admin/import"),
    ("POST", "/admin/import"),
    ("GET", "/admin/import/<int:run_id>"),
    ("POST", "/admin/import/<int:run_id>/run"),
    ("POST", "/admin/import/<int:run_id>/cancel"),
    ("GET", "/admin/audit"),  # roles, audit log (#20)
    ("POST", "/admin/users/<int:user_id>/role"),
    ("GET", "/admin/settings"),  # site settings (#17)
    ("POST", "/admin/settings"),
    ("GET", "/admin/navigation"),  # menus (#17)
    ("POST", "/admin/navigation"),
    ("GET", "/admin/federation"),  # the fediverse (#19)
    ("POST", "/admin/federation/followers/<int:follower_id>/approve"),
    ("POST", "/admin/federation/followers/<int:follower_id>/remove"),
    ("POST", "/admin/federation/blocks"),
    ("POST", "/admin/federation/blocks/<int:block_id>/remove"),
    ("POST", "/admin/federation/domains/resume"),
}
# Words only alice's draft, trashed and scheduled posts hold.
HIDDEN = ("zanzibardraft", "zanzibartrash", "zanzibarlater")
# Tables whose rows another author's attempts must leave exactly as they were.
CONTENT_TABLES = (
    *("posts", "revisions", "post_tags", "tags", "post_slugs", "gone_slugs", "users"),
    *("jobs", "sent_messages", "subscribers", "media", "invitations"),
)


@dataclass
class Blog:
    cast: Cast
    published: str
    draft: str
    trashed: str
    scheduled: str
    alice_id: int
    bob_id: int
    autosave: int
    media_id: int = 1  # alice's picture

    def fill(self, rule: str, slug: str | None = None) -> str:
        """Give a concrete path for a rule, on alice's published post unless told."""
        return (
            rule.replace("<slug:slug>", slug or self.published)
            .replace("<int:number>", "1")
            .replace("<int:user_id>", str(self.alice_id))
            .replace("<tag>", "x")
            .replace("<username>", "alice")
            .replace("<job_id>", "0f" * 16)
            .replace("<int:media_id>", str(self.media_id))
            .replace("<int:invitation_id>", "1")
            .replace("<int:run_id>", "1")
            .replace("<int:post_id>", "1")
            .replace("<int:comment_id>", "1")
            .replace("<public_id>", "0" * 16)
            .replace("<int:passkey_id>", "1")
            .replace("<table>", "days")
            .replace("<int:follower_id>", "1")
            .replace("<int:block_id>", "1")
            .replace("<int:token_id>", "1")
        )


def build_blog(app: App) -> Blog:
    cast = make_cast(app)
    alice = cast.author
    published = slug_of(write_post(alice, title="Alice in public", tags="mine"))
    assert edit_post(alice, published, body="A second revision.").status_code == 303
    draft = slug_of(
        write_post(alice, title="Alice thinking", status="draft", body=f"{HIDDEN[0]}.", tags="hush")
    )
    trashed = slug_of(write_post(alice, title="Alice regrets", body=f"{HIDDEN[1]}.", tags="hush"))
    assert delete_post(alice, trashed).status_code == 303
    scheduled = slug_of(
        write_post(
            alice,
            title="Alice tomorrow",
            body=f"{HIDDEN[2]}.",
            tags="hush",
            publish_at=f"{utcnow().year + 1}-01-01T09:00",
        )
    )
    response = alice.post(
        f"/posts/{published}/autosave",
        data={"csrf_token": csrf_token(alice), "title": "Unsaved", "body": "Unsaved text."},
    )
    assert response.status_code == 200
    with get_database(app).read() as db:
        ids = {name: id_ for name, id_ in db.execute(select(User.username, User.id))}
    for client in (cast.admin, cast.author, cast.other):
        client.get("/")  # read any flash, so sessions stay quiet
    revision = response.json["revision"]
    picture = alice.post(
        "/media",
        data={"csrf_token": csrf_token(alice), "alt": "Alice's picture"},
        files={"file": ("alice.png", _small_png(), "image/png")},
        headers={"Accept": "application/json"},
    )
    assert picture.status_code == 200
    with get_database(app).read() as db:
        media_id = db.scalar(select(Media.id).where(Media.owner_id == ids["alice"]))
    return Blog(
        cast, published, draft, trashed, scheduled, ids["alice"], ids["bob"], revision, media_id
    )


def _small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 0, 0)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    app = make_blog_app(tmp_path_factory.mktemp("access"))
    yield build_blog(app)
    get_database(app).dispose()


def form_data(blog: Blog, method: str, rule: str, token: str) -> dict[str, Any] | None:
    if method != "POST":
        return None
    data: dict[str, Any] = {"csrf_token": token}
    if rule.endswith("/edit") or rule == "/posts":
        data.update(title="Taken over", body="Taken over.", status="published", base_revision="2")
    elif rule.endswith("/autosave"):
        data.update(title="Taken over", body="Taken over.")
    elif rule == "/posts/preview":
        data.update(body="x", editing=blog.published)
    elif rule == "/admin/users":
        data.update(
            username="sneaky",
            email="sneaky@example.com",
            password="sneaky passphrase 1",
            confirm="sneaky passphrase 1",
            role="admin",
        )
    elif rule == "/admin/invitations":
        data.update(invite_email="sneaky@example.com", invite_role="admin")
    return data


def test_every_route_is_classified(blog: Blog) -> None:
    routes = {
        (method, rule.rule)
        for rule in blog.cast.app.router.rules
        for method in rule.methods
        if method != "HEAD"
    }
    classified = PUBLIC | AUTHOR_ONLY | ADMIN_ONLY | EDITOR_ONLY | TOKEN_ONLY
    assert routes == classified, "classify the new route here"


@pytest.mark.parametrize(("method", "rule"), sorted(AUTHOR_ONLY | ADMIN_ONLY | EDITOR_ONLY))
def test_anonymous_visitors_are_sent_to_sign_in(blog: Blog, method: str, rule: str) -> None:
    visitor = blog.cast.app.test_client()
    path = blog.fill(rule)
    data = form_data(blog, method, rule, csrf_token(visitor, "/login"))
    response = visitor.open(method, path, data=data)
    assert response.status_code == 303, response.status_code
    target = urlsplit(response.location)
    assert target.path == "/login"
    assert parse_qs(target.query)["next"] == [path]


# Another author (bob) against alice's things: (method, path, expected statuses).
def bobs_attempts(blog: Blog) -> dict[str, tuple[str, str, set[int]]]:
    p, d, t, n = blog.published, blog.draft, blog.trashed, blog.autosave
    attempts = {}
    for label, slug, refused in (
        ("published", p, {403}),
        ("draft", d, {404}),
        ("trashed", t, {410}),
    ):
        attempts.update(
            {
                f"edit page of the {label} post": ("GET", f"/posts/{slug}/edit", refused),
                f"autosave offer of the {label} post": (
                    "GET",
                    f"/posts/{slug}/edit?autosave={n}",
                    refused,
                ),
                f"save the {label} post": ("POST", f"/posts/{slug}/edit", refused),
                f"autosave into the {label} post": ("POST", f"/posts/{slug}/autosave", refused),
                f"delete the {label} post": ("POST", f"/posts/{slug}/delete", refused),
                f"statistics of the {label} post": ("GET", f"/posts/{slug}/stats", refused),
                f"statistics of the {label} post as CSV": (
                    "GET",
                    f"/posts/{slug}/stats/referrers.csv",
                    refused,
                ),
                f"history of the {label} post": ("GET", f"/posts/{slug}/revisions", refused),
                f"a revision of the {label} post": ("GET", f"/posts/{slug}/revisions/1", refused),
                f"restore a revision of the {label} post": (
                    "POST",
                    f"/posts/{slug}/revisions/1/restore",
                    refused,
                ),
            }
        )
    attempts.update(
        {
            "read the draft": ("GET", f"/posts/{d}", {404}),
            "read the draft through the API": ("GET", f"/api/posts/{d}", {404}),
            # "hush" is carried only by alice's draft, trashed and scheduled posts.
            "the page of a tag only hidden posts carry": ("GET", "/tags/hush", {404}),
            "the second page of that tag": ("GET", "/tags/hush?page=2", {404}),
            "the feed of that tag": ("GET", "/tags/hush/feed.atom", {404}),
            "that tag spelled otherwise": ("GET", "/tags/HUSH", {404}),
            "preview as the published post": ("POST", "/posts/preview", {403}),
            "restore the trashed post": ("POST", f"/posts/{t}/restore", {403}),
            "purge the trashed post": ("POST", f"/posts/{t}/purge", {403}),
            "restore the published post from the trash": ("POST", f"/posts/{p}/restore", {404}),
            "purge the published post": ("POST", f"/posts/{p}/purge", {404}),
            "the users page": ("GET", "/admin/users", {403}),
            "add an admin": ("POST", "/admin/users", {403}),
            "deactivate alice": ("POST", f"/admin/users/{blog.alice_id}/deactivate", {403}),
            "activate alice": ("POST", f"/admin/users/{blog.alice_id}/activate", {403}),
            "the jobs page": ("GET", "/admin/jobs", {403}),
            "retry a job": ("POST", f"/admin/jobs/{'0f' * 16}/retry", {403}),
            "discard a job": ("POST", f"/admin/jobs/{'0f' * 16}/discard", {403}),
            "the outbox": ("GET", "/admin/outbox", {403}),
            "send a test message": ("POST", "/admin/outbox/test", {403}),
            "the subscribers page": ("GET", "/admin/subscribers", {403}),
            "the subscribers export": ("GET", "/admin/subscribers.csv", {403}),
            "invite an admin": ("POST", "/admin/invitations", {403}),
            "revoke an invitation": ("POST", "/admin/invitations/1/revoke", {403}),
            "change the alt text of alice's picture": (
                "POST",
                f"/media/{blog.media_id}/alt",
                {404},
            ),
            "delete alice's picture": ("POST", f"/media/{blog.media_id}/delete", {404}),
            # export and import (#16): an author exports only their own, at /account/export
            "the site export page": ("GET", "/admin/export", {403}),
            "download the whole site": ("POST", "/admin/export", {403}),
            "the import page": ("GET", "/admin/import", {403}),
            "upload an import": ("POST", "/admin/import", {403}),
            "an import's report": ("GET", "/admin/import/1", {403}),
            "run an import": ("POST", "/admin/import/1/run", {403}),
            "cancel an import": ("POST", "/admin/import/1/cancel", {403}),
            # roles, review and the audit log (#20)
            "make alice an admin": ("POST", f"/admin/users/{blog.alice_id}/role", {403}),
            "the audit log": ("GET", "/admin/audit", {403}),
            "the review queue": ("GET", "/review", {403}),
            "a post in review": ("GET", "/review/1", {403}),
            "approve a post": ("POST", "/review/1/approve", {403}),
            "send a post back": ("POST", "/review/1/changes", {403}),
            "submit alice's draft for review": ("POST", f"/posts/{d}/submit", {404}),
            "submit alice's post for review": ("POST", f"/posts/{p}/submit", {403}),
        }
    )
    return attempts


ATTEMPTS = tuple(
    bobs_attempts(Blog(None, "p", "d", "t", "s", 1, 2, 3))  # type: ignore[arg-type]
)


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_another_author_is_refused_and_changes_nothing(blog: Blog, attempt: str) -> None:
    method, path, refused = bobs_attempts(blog)[attempt]
    bob = blog.cast.other
    rule = path.split("?")[0]
    if rule.startswith("/posts/") and rule.count("/") >= 3:
        rule = "/posts/<slug:slug>/" + rule.split("/", 3)[3]
    data = form_data(blog, method, rule, csrf_token(bob))
    engine = get_database(blog.cast.app).engine
    before = snapshot(engine, CONTENT_TABLES)
    with engine.connect() as connection:
        rows_before = connection.execute(text("SELECT * FROM posts ORDER BY id")).all()
    response = bob.open(method, path, data=data)
    assert response.status_code in refused, f"{method} {path}: {response.status_code}"
    assert changed_tables(before, snapshot(engine, CONTENT_TABLES)) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT * FROM posts ORDER BY id")).all() == rows_before


def test_an_author_cannot_give_themselves_a_role_or_another_authors_name(blog: Blog) -> None:
    bob = blog.cast.other
    token = csrf_token(bob)
    response = bob.post(
        "/account",
        data={
            "csrf_token": token,
            "display_name": "Bob",
            "bio": "",
            "role": "admin",
            "is_active": "1",
            "username": "alice",
            "id": str(blog.alice_id),
        },
    )
    assert response.status_code == 303
    response = bob.post(
        "/posts",
        data={
            "csrf_token": token,
            "title": "Whose is it",
            "body": "Mine.",
            "status": "draft",
            "author_id": str(blog.alice_id),
        },
    )
    slug = slug_of(response)
    with get_database(blog.cast.app).read() as db:
        bob_row = db.get(User, blog.bob_id)
        assert (bob_row.role, bob_row.username) == ("author", "bob")
        assert db.scalar(select(Post.author_id).where(Post.slug == slug)) == blog.bob_id


def test_an_admin_may_do_everything(tmp_path) -> None:
    app = make_blog_app(tmp_path)
    try:
        blog = build_blog(app)
        admin = blog.cast.admin
        p, d, t = blog.published, blog.draft, blog.trashed
        for path in (
            "/admin/users",
            "/drafts",
            "/trash",
            f"/posts/{d}",
            f"/posts/{p}/edit",
            f"/posts/{d}/edit",
            f"/posts/{p}/revisions",
            f"/posts/{p}/revisions/1",
        ):
            assert admin.get(path).status_code == 200, path
        assert "Alice thinking" in admin.get("/drafts").text
        assert "Alice regrets" in admin.get("/trash").text
        token = csrf_token(admin)
        done = [
            admin.post(f"/posts/{p}/revisions/1/restore", data={"csrf_token": token}),
            admin.post(f"/posts/{p}/delete", data={"csrf_token": token}),
            admin.post(f"/posts/{p}/restore", data={"csrf_token": token}),
            admin.post(f"/posts/{t}/purge", data={"csrf_token": token}),
            admin.post(f"/admin/users/{blog.bob_id}/deactivate", data={"csrf_token": token}),
            admin.post(f"/admin/users/{blog.bob_id}/activate", data={"csrf_token": token}),
        ]
        assert [r.status_code for r in done] == [303] * len(done)
        values = admin.get(f"/posts/{d}/edit").form_values("#post-form")
        values.update(title="Edited by the admin")
        assert admin.post(f"/posts/{d}/edit", data=values).status_code == 303
        with get_database(app).read() as db:
            assert db.scalar(select(Post.title).where(Post.slug == d)) == "Edited by the admin"
            assert db.scalar(select(Post.id).where(Post.slug == t)) is None
            restored = db.scalar(select(Revision.kind).where(Revision.kind == "restore").limit(1))
            assert restored == "restore"
    finally:
        get_database(app).dispose()


PUBLIC_PLACES = (
    "/",
    "/posts",
    "/tags/hush",
    "/authors/alice",
    "/authors/alice/feed.atom",
    "/tags/hush/feed.atom",
    "/feed.atom",
    "/feed.rss",
    "/sitemap.xml",
    "/api/posts",
    "/api/tags",
)


@pytest.mark.parametrize("who", ["anonymous", "other"])
def test_drafts_scheduled_and_trashed_posts_show_nowhere(blog: Blog, who: str) -> None:
    client = blog.cast.client(who)
    for slug in (blog.draft, blog.scheduled):
        assert client.get(f"/posts/{slug}").status_code == 404
        assert client.get(f"/api/posts/{slug}").status_code == 404
    assert client.get(f"/posts/{blog.trashed}").status_code == 410
    for path in ("/tags/hush", "/tags/hush/feed.atom", "/tags/Hush"):  # no redirect either
        assert client.get(path).status_code == 404, path
    for path in ("/tags", "/api/tags", "/sitemap.xml"):
        assert "hush" not in client.get(path).text.lower(), f"{path} names the hidden tag"
    for path in PUBLIC_PLACES:
        response = client.get(path)
        assert response.status_code in (200, 404), f"{path}: {response.status_code}"
        for secret in (*HIDDEN, blog.draft, blog.scheduled, blog.trashed):
            assert secret not in response.text, f"{path} shows {secret}"
    assert client.get("/search?q=second").html.select(".search-hit"), "search finds nothing"
    for word in HIDDEN:  # the query is shown back; the posts must not be
        assert client.get(f"/api/search?q={word}").json["results"] == []
        page = client.get(f"/search?q={word}")
        assert page.html.select(".search-hit") == []
        for slug in (blog.draft, blog.scheduled, blog.trashed):
            assert slug not in page.text


def test_a_signed_in_page_is_never_kept_for_others(blog: Blog) -> None:
    admin = blog.cast.admin
    token = csrf_token(admin)
    mine = admin.get(f"/posts/{blog.published}")
    assert token in mine.text  # the Delete form carries it
    cache = mine.headers.get("Cache-Control", "")
    assert "private" in cache or "no-store" in cache, cache
    assert "cookie" in mine.headers.get("Vary", "").lower()
    for _ in range(2):  # the second read would come from the page cache
        theirs = blog.cast.app.test_client().get(f"/posts/{blog.published}")
        assert theirs.status_code == 200
        assert token not in theirs.text
        assert theirs.html.select_one('form[action$="/delete"]') is None
