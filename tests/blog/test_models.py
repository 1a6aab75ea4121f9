"""Tests for pyproject/blog/models.py: what the models say about themselves, and the rules
the tables keep, on a real migrated SQLite file.

How timestamps are stored (aware UTC, naive refused) is in tests/blog/test_storage.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from pyproject.blog.db import get_database
from pyproject.blog.models import (
    OldSlug,
    Post,
    Revision,
    Tag,
    User,
    post_tags,
    set_clock,
    utcnow,
)
from pyproject.lib import App

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
_numbers = itertools.count(1)


# --- the clock -----------------------------------------------------------------------------


def test_utcnow_is_aware_utc_from_the_real_clock():
    before = datetime.now(UTC)
    now = utcnow()

    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_set_clock_replaces_the_clock_and_none_restores_it():
    set_clock(lambda: NOW)
    try:
        assert utcnow() == NOW
    finally:
        set_clock(None)
    assert abs(utcnow() - datetime.now(UTC)) < timedelta(seconds=5)


# --- what the models say -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display_name", "role", "name", "is_admin"),
    [("Ada Admin", "admin", "Ada Admin", True), ("", "author", "ada", False)],
)
def test_a_user_is_named_by_display_name_else_username(display_name, role, name, is_admin):
    user = User(username="ada", display_name=display_name, role=role)

    assert user.name == name
    assert user.is_admin is is_admin


def post_at(status: str, published_at: datetime | None, deleted_at: datetime | None = None) -> Post:
    return Post(status=status, published_at=published_at, deleted_at=deleted_at)


@pytest.mark.parametrize(
    ("post", "published", "scheduled"),
    [
        (post_at("published", NOW - timedelta(seconds=1)), True, False),
        (post_at("published", NOW), True, False),
        (post_at("published", NOW + timedelta(seconds=1)), False, True),
        (post_at("published", None), False, False),
        (post_at("draft", NOW - timedelta(days=1)), False, False),
        (post_at("draft", NOW + timedelta(days=1)), False, False),
        (post_at("published", NOW - timedelta(days=1), deleted_at=NOW), False, False),
    ],
    ids=["past", "now", "future", "no-date", "draft", "draft-future", "in-trash"],
)
def test_whether_a_post_is_published_or_scheduled_follows_the_clock(
    clock, post, published, scheduled
):
    clock.now = NOW

    assert post.is_published is published
    assert post.is_scheduled is scheduled


def test_a_scheduled_post_becomes_published_when_its_time_comes(clock):
    clock.now = NOW
    post = post_at("published", NOW + timedelta(hours=1))

    clock.advance(hours=1)

    assert post.is_published
    assert not post.is_scheduled


# --- the tables' rules ---------------------------------------------------------------------


def add_author(db) -> User:
    n = next(_numbers)
    user = User(username=f"writer{n}", email=f"writer{n}@example.com", password_hash="x")
    db.add(user)
    db.flush()
    return user


def add_post(db, author: User, **values) -> Post:
    n = next(_numbers)
    fields = {"title": f"Post {n}", "slug": f"post-{n}", "body_md": "x", "body_html": "<p>x</p>"}
    post = Post(author_id=author.id, **{**fields, **values})
    db.add(post)
    db.flush()
    return post


def test_a_post_gets_defaults_when_first_stored(module_app: App):
    with get_database(module_app).write() as db:
        post = add_post(db, add_author(db))
        post_id = post.id

    with get_database(module_app).read() as db:
        stored = db.get(Post, post_id)
        assert (stored.status, stored.revision, stored.render_version) == ("draft", 0, 0)
        assert (stored.summary, stored.tag_names, stored.toc_html) == ("", "", "")
        assert stored.published_at is None and stored.deleted_at is None
        assert stored.created_at.utcoffset() == timedelta(0)
        assert stored.author.username.startswith("writer")


def test_two_posts_cannot_share_a_slug(module_app: App):
    database = get_database(module_app)
    with database.write() as db:
        author = add_author(db)
        add_post(db, author, slug="only-once")

    with pytest.raises(IntegrityError), database.write() as db:
        add_post(db, db.get(User, author.id), slug="only-once")


def test_a_post_cannot_have_two_revisions_with_one_number(module_app: App):
    database = get_database(module_app)
    with database.write() as db:
        post = add_post(db, add_author(db))
        db.add(Revision(post_id=post.id, number=1, title="t", body_md="b"))
        post_id = post.id

    with pytest.raises(IntegrityError), database.write() as db:
        db.add(Revision(post_id=post_id, number=1, title="t again", body_md="b"))


def test_a_save_from_a_stale_copy_of_a_post_is_refused(module_app: App):
    database = get_database(module_app)
    with database.write() as db:
        post = add_post(db, add_author(db), revision=1)
        post_id, title = post.id, post.title

    with pytest.raises(StaleDataError), database.write() as db:
        mine = db.get(Post, post_id)
        # Another writer saves revision 2 after this copy was loaded.
        theirs = update(Post).where(Post.id == post_id).values(title="Theirs", revision=2)
        db.execute(theirs.execution_options(synchronize_session=False))
        mine.title, mine.revision = "Mine", 2
        db.flush()

    with database.read() as db:  # the refused save rolled the whole transaction back
        assert (db.get(Post, post_id).title, db.get(Post, post_id).revision) == (title, 1)


def test_a_posts_tags_come_in_name_order(module_app: App):
    database = get_database(module_app)
    n = next(_numbers)
    with database.write() as db:
        post = add_post(db, add_author(db))
        post.tags = [
            Tag(name=name, slug=f"{name.lower()}-{n}") for name in ("zebra", "Apple", "mango")
        ]
        post_id = post.id

    with database.read() as db:
        assert [tag.name for tag in db.get(Post, post_id).tags] == ["Apple", "mango", "zebra"]


def test_deleting_a_post_takes_its_revisions_old_slugs_and_tag_links_with_it(module_app: App):
    database = get_database(module_app)
    n = next(_numbers)
    with database.write() as db:
        post = add_post(db, add_author(db))
        post.tags = [Tag(name="kept", slug=f"kept-{n}")]
        db.add(Revision(post_id=post.id, number=1, title="t", body_md="b"))
        db.add(OldSlug(slug=f"earlier-{n}", post_id=post.id))
        post_id = post.id

    with database.write() as db:
        db.delete(db.get(Post, post_id))

    with database.read() as db:
        assert db.scalar(select(func.count()).where(Revision.post_id == post_id)) == 0
        assert db.scalar(select(func.count()).where(OldSlug.post_id == post_id)) == 0
        assert db.scalar(select(func.count()).where(post_tags.c.post_id == post_id)) == 0
        assert db.scalar(select(Tag.name).where(Tag.slug == f"kept-{n}")) == "kept"


def test_an_author_with_posts_cannot_be_deleted(module_app: App):
    database = get_database(module_app)
    with database.write() as db:
        author = add_author(db)
        add_post(db, author)
        author_id = author.id

    with pytest.raises(IntegrityError), database.write() as db:
        db.delete(db.get(User, author_id))
