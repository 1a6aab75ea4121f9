"""Lists of posts (pyproject/blog/listing.py): which posts a list holds, in what order, and
what its cards say.

The posts are written through the editor as an author would; the lists are then read with
the module's own statements on the app's real SQLite file. Links are built by plain
functions here, so the cards' URLs can be checked without a request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pyproject.blog import listing
from pyproject.blog.db import get_database, get_view_counts
from pyproject.blog.models import Post, Tag, User, utcnow
from pyproject.lib.exceptions import NotFound
from tests.blog.conftest import Cast, delete_post, set_post, slug_of, utc_ago, write_post

LINKS = listing.Links(
    post=lambda slug: f"/p/{slug}",
    tag=lambda slug: f"/t/{slug}",
    author=lambda username: f"/a/{username}",
)


def ids_of(cast: Cast, *slugs: str) -> list[int]:
    with get_database(cast.app).read() as db:
        by_slug = {slug: post_id for slug, post_id in db.execute(select(Post.slug, Post.id))}
    return [by_slug[slug] for slug in slugs]


def page(cast: Cast, statement: Any, number: int = 1, per_page: int = 10, **params: Any):
    with get_database(cast.app).read() as db:
        return listing.page_ids(db, statement, {"now": utcnow(), **params}, number, per_page)


def written(cast: Cast, count: int, **fields: str) -> list[str]:
    """Have alice publish `count` posts, one day apart, the last written the newest."""
    slugs = [slug_of(write_post(cast.author, title=f"Post {n}", **fields)) for n in range(count)]
    for age, slug in enumerate(reversed(slugs), start=1):
        set_post(cast.app, slug, published_at=utc_ago(days=age))
    return slugs


# --- which posts, in what order ----------------------------------------------------------


def test_newest_holds_the_visible_posts_newest_first(cast: Cast):
    slugs = written(cast, 3)
    hidden = [
        slug_of(write_post(cast.author, title="A draft", status="draft")),
        slug_of(write_post(cast.author, title="Later")),
        slug_of(write_post(cast.author, title="Binned")),
    ]
    set_post(cast.app, hidden[1], published_at=utcnow() + timedelta(days=2))
    assert delete_post(cast.author, hidden[2]).status_code == 303

    ids, has_next = page(cast, listing.NEWEST)

    assert ids == ids_of(cast, *reversed(slugs))
    assert has_next is False


def test_posts_published_at_the_same_moment_keep_a_stable_order(cast: Cast):
    slugs = written(cast, 3)
    same = utc_ago(hours=1)
    for slug in slugs:
        set_post(cast.app, slug, published_at=same)

    ids, _ = page(cast, listing.NEWEST)

    assert ids == sorted(ids, reverse=True)  # the later id first, every time


def test_pages_split_the_list_and_say_whether_another_follows(cast: Cast):
    slugs = list(reversed(written(cast, 5)))  # newest first
    first, more = page(cast, listing.NEWEST, 1, per_page=2)
    second, more_after_second = page(cast, listing.NEWEST, 2, per_page=2)
    last, more_after_last = page(cast, listing.NEWEST, 3, per_page=2)

    assert (first, more) == (ids_of(cast, *slugs[:2]), True)
    assert (second, more_after_second) == (ids_of(cast, *slugs[2:4]), True)
    assert (last, more_after_last) == (ids_of(cast, slugs[4]), False)


def test_a_page_past_the_end_is_not_found_but_an_empty_first_page_is_a_page(cast: Cast):
    assert page(cast, listing.NEWEST) == ([], False)
    written(cast, 2)
    with pytest.raises(NotFound):
        page(cast, listing.NEWEST, 2, per_page=2)


def test_a_tag_list_holds_only_the_visible_posts_with_that_tag(cast: Cast):
    tagged = written(cast, 2, tags="python")
    written(cast, 1, tags="rust")
    draft = slug_of(write_post(cast.author, title="Draft", tags="python", status="draft"))
    with get_database(cast.app).read() as db:
        tag_id = db.scalar(select(Tag.id).where(Tag.slug == "python"))

    ids, _ = page(cast, listing.BY_TAG, tag_id=tag_id)

    assert ids == ids_of(cast, *reversed(tagged))
    assert ids_of(cast, draft)[0] not in ids


def test_an_author_list_holds_only_that_authors_visible_posts(cast: Cast):
    hers = written(cast, 2)
    slug_of(write_post(cast.other, title="Bob's"))
    with get_database(cast.app).read() as db:
        alice = db.scalar(select(User.id).where(User.username == "alice"))

    ids, _ = page(cast, listing.BY_AUTHOR, author_id=alice)

    assert ids == ids_of(cast, *reversed(hers))


# --- cards -------------------------------------------------------------------------------


def test_a_card_carries_what_a_list_shows_and_its_links(cast: Cast):
    slug = slug_of(
        write_post(
            cast.author, title="Cards & links", body="word " * 450, tags="Zebra, apple, Café"
        )
    )
    (post_id,) = ids_of(cast, slug)
    with get_database(cast.app).read() as db:
        card = listing.cards_by_id(db, [post_id], LINKS)[post_id]
        post = db.get(Post, post_id)
        summary, published_at = post.summary, post.published_at

    assert (card.id, card.slug, card.title) == (post_id, slug, "Cards & links")
    assert card.summary == summary and card.summary.startswith("word word")
    assert card.published_at == published_at
    assert card.reading_minutes == 2  # 450 words at 225 a minute
    assert card.url == f"/p/{slug}"
    assert card.author == listing.Link("Alice Author", "alice", "/a/alice")
    names = [tag.name for tag in card.tags]
    assert sorted(names) == names and set(names) == {"Zebra", "apple", "Café"}
    assert {tag.url for tag in card.tags} == {f"/t/{tag.slug}" for tag in card.tags}


def test_an_author_without_a_display_name_is_shown_by_username(cast: Cast):
    with get_database(cast.app).write() as db:
        db.scalar(select(User).where(User.username == "bob")).display_name = ""
    (post_id,) = ids_of(cast, slug_of(write_post(cast.other, title="Plain name")))
    with get_database(cast.app).read() as db:
        card = listing.cards_by_id(db, [post_id], LINKS)[post_id]
    assert card.author.name == "bob"


def test_cards_leave_out_ids_that_do_not_exist_and_load_each_post_once(cast: Cast):
    first, second = ids_of(cast, *written(cast, 2))
    with get_database(cast.app).read() as db:
        cards = listing.cards_by_id(db, [second, 999_999, first, second], LINKS)
        assert listing.cards_by_id(db, [], LINKS) == {}
    assert set(cards) == {first, second}
    assert cards[first].tags == [] and cards[second].tags == []


def test_card_page_gives_cards_in_the_lists_order_with_the_apps_links(cast: Cast):
    slugs = written(cast, 3)
    home = cast.anonymous.get("/")  # card_page under a request: the app's URL builders
    links = [a["href"] for a in home.html.select("main article h2 a, main article h3 a")]
    wanted = [f"/posts/{slug}" for slug in reversed(slugs)]
    assert [link for link in links if link in wanted][:3] == wanted


# --- the week's most read ----------------------------------------------------------------


def test_most_read_ranks_this_weeks_visible_posts_by_views(cast: Cast):
    quiet, loud, middling = written(cast, 3)
    old = slug_of(write_post(cast.author, title="Old news"))
    set_post(cast.app, old, published_at=utc_ago(days=30), view_count=1000)
    for slug, views in ((quiet, 5), (loud, 50), (middling, 20)):
        set_post(cast.app, slug, view_count=views)
    counts = get_view_counts(cast.app)

    with get_database(cast.app).read() as db:
        top = listing.most_read(db, utcnow(), counts.most_viewed, days=7, count=2)

    # The old post has the most views but is no candidate: it is not this week's.
    assert top == list(zip(ids_of(cast, loud, middling), (50, 20), strict=True))
