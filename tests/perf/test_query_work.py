"""What the post page's statements cost SQLite does not grow with the posts around the post.

Counted in SQLite's own work (virtual machine steps, through the connection's progress
handler), not in time: a plan that walks an index past every newer post shows as work
that grows with the post's age, whatever the machine's load. The blog has POSTS posts a
day apart, each with two of a few tags; a post's page asks for its neighbours and related
posts (reading.other_posts_statement) and its own row (posts.ShownPost's lookup).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from pyproject.app import create_app
from pyproject.blog import posts, reading
from pyproject.blog.db import get_database
from pyproject.blog.migrate import upgrade
from pyproject.blog.models import Post, Tag, User, post_tags, utcnow
from pyproject.lib import App

POSTS = 3000
TAGS = 6
STEP = 100  # VM steps between two calls of the progress handler


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder: Path = tmp_path_factory.mktemp("query-work")
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "DEBUG": False,
            "BASE_URL": "http://localhost",
            "DATABASE_URL": f"sqlite:///{folder / 'blog.sqlite3'}",
            "INSTANCE_PATH": str(folder),
            "LOG_LEVEL": "WARNING",
        }
    )
    upgrade(get_database(app).engine)
    now = utcnow()
    with get_database(app).write() as db:
        author = User(username="ada", email="ada@example.com", password_hash="x", role="author")
        db.add(author)
        db.add_all(Tag(name=f"Topic {n}", slug=f"topic-{n}") for n in range(TAGS))
        db.flush()
        tag_ids = list(db.scalars(select(Tag.id).order_by(Tag.id)))
        rows = []
        for number in range(POSTS):
            at = now - timedelta(days=POSTS - number)  # post-0 the oldest
            rows.append(
                {
                    "author_id": author.id,
                    "title": f"Post {number}",
                    "slug": f"post-{number}",
                    "body_md": "Words.",
                    "body_html": "<p>Words.</p>",
                    "summary": "Words.",
                    "status": "published",
                    "created_at": at,
                    "updated_at": at,
                    "published_at": at,
                    "revision": 1,
                }
            )
        db.execute(insert(Post), rows)
        ids = list(db.scalars(select(Post.id).order_by(Post.id)))
        links = [
            {"post_id": post_id, "tag_id": tag_ids[(i + k) % TAGS]}
            for i, post_id in enumerate(ids)
            for k in (0, 1)
        ]
        db.execute(insert(post_tags), links)
    yield app
    get_database(app).dispose()


def work_of(app: App, statement: Any, params: dict[str, Any]) -> tuple[int, list[Any]]:
    """Run a statement on a pooled connection; give SQLite's work for it, and its rows."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    with get_database(app).engine.connect() as connection:
        sqlite = connection.connection.driver_connection
        sqlite.set_progress_handler(count, STEP)
        try:
            rows = connection.execute(statement, params).all()
        finally:
            sqlite.set_progress_handler(None, STEP)
    return steps[0], rows


def end_work(app: App, slug: str) -> tuple[int, list[Any]]:
    with get_database(app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        tag_ids = sorted(tag.id for tag in post.tags)
        params = {"now": utcnow(), "here_at": post.published_at, "post_id": post.id}
    params.update((f"tag_{n}", tag_id) for n, tag_id in enumerate(tag_ids))
    return work_of(app, reading.other_posts_statement(len(tag_ids)), params)


def test_the_end_of_an_old_post_costs_what_the_end_of_the_newest_costs(blog: App) -> None:
    """The older neighbour is found from the post's own place in time: a plan bounded by
    `now` walked the index down through every newer post (8 ms a page in the middle of
    100,000 posts)."""
    newest, newest_rows = end_work(blog, f"post-{POSTS - 1}")
    middle, middle_rows = end_work(blog, f"post-{POSTS // 2}")
    oldest, _ = end_work(blog, "post-1")
    roles = sorted(row.role for row in middle_rows)
    assert roles[:2] == [1, 2] and len(middle_rows) > 2  # older, newer, related
    assert {row.slug for row in middle_rows if row.role in (1, 2)} == {
        f"post-{POSTS // 2 - 1}",
        f"post-{POSTS // 2 + 1}",
    }
    assert [row.role for row in newest_rows].count(2) == 0  # no newer post
    # Walking 1,500 newer index entries is several times the whole statement's work.
    assert middle <= 2 * newest + 20, (newest, middle, oldest)
    assert oldest <= 2 * newest + 20, (newest, middle, oldest)


def test_a_post_page_s_own_row_costs_the_same_for_any_post(blog: App) -> None:
    costs = [
        work_of(blog, posts._post_page_by_slug("sqlite"), {"slug": f"post-{number}"})[0]
        for number in (0, POSTS // 2, POSTS - 1)
    ]
    assert max(costs) <= min(costs) + 5, costs
