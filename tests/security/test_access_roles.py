"""Access per role (#20): every signed-in route against an admin, an editor, an author and
a contributor, on another author's (alice's) things.

Refused is 403 (or 404/410 where the thing is hidden from that person) and changes no row;
allowed GETs answer without refusal. Who may do what is pyproject/blog/roles.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from blog.conftest import create_author, csrf_token, login, slug_of, write_post
from sqlalchemy import select, text

from pyproject.blog.db import get_database
from pyproject.blog.models import Post
from pyproject.lib.testing import TestClient

from .checks import changed_tables, snapshot
from .test_access import (
    ADMIN_ONLY,
    AUTHOR_ONLY,
    CONTENT_TABLES,
    EDITOR_ONLY,
    Blog,
    build_blog,
    form_data,
    make_blog_app,
)

PASSWORD = "role passphrase 1"
ROLES = ("admin", "editor", "author", "contributor")
REFUSED = {403, 404, 410}
# Routes about one post, and whether editors reach other people's (authors never do).
POST_ROUTES = {rule for _, rule in AUTHOR_ONLY if rule.startswith("/posts/<slug:slug>/")}
OWN_ONLY = {"/posts/<slug:slug>/submit"}  # only the post's own author submits it


@dataclass
class RoleBlog:
    blog: Blog
    clients: dict[str, TestClient]
    review_id: int  # a contributor's post waiting in the queue


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleBlog]:
    app = make_blog_app(tmp_path_factory.mktemp("roles"))
    blog = build_blog(app)
    clients = {"admin": blog.cast.admin, "author": blog.cast.other}
    for name, role in (("edna", "editor"), ("carl", "contributor")):
        assert create_author(blog.cast.admin, name, password=PASSWORD, role=role).status_code == 303
        clients[role] = app.test_client()
        assert login(clients[role], name, PASSWORD).status_code == 303
    queued = slug_of(write_post(clients["contributor"], title="Carl asks", status="published"))
    with get_database(app).read() as db:
        review_id = db.scalar(select(Post.id).where(Post.slug == queued))
    for client in clients.values():
        client.get("/")  # read the flash
    yield RoleBlog(blog, clients, review_id)
    get_database(app).dispose()


def expected(role: str, method: str, rule: str) -> str:
    """Give "allowed" or "refused" for a role on a route, on alice's things."""
    if (method, rule) in ADMIN_ONLY:
        return "allowed" if role == "admin" else "refused"
    if (method, rule) in EDITOR_ONLY:
        return "allowed" if role in ("admin", "editor") else "refused"
    if rule in OWN_ONLY:
        return "refused"
    if rule in POST_ROUTES:
        return "allowed" if role in ("admin", "editor") else "refused"
    return "allowed"  # the person's own pages: account, drafts, media, moderation...


# Every refusal, and every allowed GET (allowed writes change the world; they are tested
# where they are built: tests/blog/test_roles.py, test_review.py, test_posts.py...).
CASES = [
    (role, method, rule)
    for role in ROLES
    for method, rule in sorted(AUTHOR_ONLY | ADMIN_ONLY | EDITOR_ONLY)
    if method == "GET" or expected(role, method, rule) == "refused"
]


def concrete(world: RoleBlog, rule: str) -> str:
    return world.blog.fill(rule).replace("/review/1", f"/review/{world.review_id}")


@pytest.mark.parametrize(("role", "method", "rule"), CASES)
def test_each_role_reaches_exactly_what_it_may(
    world: RoleBlog, role: str, method: str, rule: str
) -> None:
    client = world.clients[role]
    path = concrete(world, rule)
    verdict = expected(role, method, rule)
    engine = get_database(world.blog.cast.app).engine
    before = snapshot(engine, (*CONTENT_TABLES, "reviews"))
    with engine.connect() as connection:
        posts_before = connection.execute(text("SELECT * FROM posts ORDER BY id")).all()
    data = form_data(world.blog, method, rule, csrf_token(client))
    response = client.open(method, path, data=data)
    if verdict == "refused":
        assert response.status_code in REFUSED, f"{role} {method} {path}: {response.status_code}"
        assert changed_tables(before, snapshot(engine, (*CONTENT_TABLES, "reviews"))) == []
        with engine.connect() as connection:
            assert connection.execute(text("SELECT * FROM posts ORDER BY id")).all() == posts_before
    else:
        # Things that exist here (posts, the queued post) must be reached; elsewhere a 404
        # for an object that is not there (an import run, a job) is no refusal.
        reached = REFUSED if (rule in POST_ROUTES or (method, rule) in EDITOR_ONLY) else {403}
        assert response.status_code not in reached, f"{role} {method} {path}"
        location = response.headers.get("Location", "")
        assert not location.startswith("/login"), f"{role} {method} {path} -> {location}"


@pytest.mark.parametrize("role", ["author", "contributor"])
def test_only_editors_and_admins_see_everyone_s_drafts(world: RoleBlog, role: str) -> None:
    for who in ("admin", "editor"):
        assert "Alice thinking" in world.clients[who].get("/drafts").text
    assert "Alice thinking" not in world.clients[role].get("/drafts").text


def test_a_contributor_cannot_publish_through_any_form(world: RoleBlog) -> None:
    carl = world.clients["contributor"]
    for status, publish_at in (
        ("published", ""),
        ("published", "2030-01-01T09:00"),
        ("draft", "2030-01-01T09:00"),
    ):
        slug = slug_of(
            write_post(
                carl, title=f"Try {status} {publish_at}", status=status, publish_at=publish_at
            )
        )
        with get_database(world.blog.cast.app).read() as db:
            post = db.scalar(select(Post).where(Post.slug == slug))
            assert (post.status, post.published_at) == ("draft", None)
