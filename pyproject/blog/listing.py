"""Lists of posts for readers (home, archive, a tag, an author, the week's most read).

A list shows a few columns of each post, never its body: it needs rows, not ORM
objects. Every statement here is built once, at import, with bound parameters, so
SQLAlchemy compiles each one once per process and a request only binds values. A page
costs three queries whatever its length: the ids of the page (from the index alone,
cheap even thousands of pages deep), their cards, and their tags; a fourth gives the
cover pictures of a page that shows any.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from pyproject.blog.cover import Cover, covers_by_id
from pyproject.blog.models import CommentCount, Post, Tag, User, UTCDateTime, post_tags, visible
from pyproject.lib import current_app, current_request
from pyproject.lib.exceptions import NotFound

NOW = bindparam("now", type_=UTCDateTime())
_IDS = bindparam("ids", expanding=True)


@dataclass(slots=True)
class Link:
    """Something a card links to: its name as shown, its URL name, and its URL."""

    name: str
    slug: str
    url: str


@dataclass(slots=True)
class Card:
    """What a list shows of one post."""

    id: int
    slug: str
    title: str
    summary: str
    published_at: datetime | None
    reading_minutes: int
    url: str
    author: Link
    tags: list[Link] = field(default_factory=list)
    cover: Cover | None = None  # its thumbnail is shown beside it (#15)
    comment_count: int = 0  # approved comments (#18)


# --- the statements ----------------------------------------------------------------------

NEWEST_FIRST = (Post.published_at.desc(), Post.id.desc())


def _page_of(query: Select) -> Select:
    return query.order_by(*NEWEST_FIRST).limit(bindparam("limit")).offset(bindparam("offset"))


# Posts, not pages (#17): kind is in the lists' partial index, so still read from it alone.
_VISIBLE_IDS = select(Post.id).where(*visible(NOW), Post.kind == "post")

# The ids of one page of each kind of list, newest first.
NEWEST = _page_of(_VISIBLE_IDS)
BY_AUTHOR = _page_of(_VISIBLE_IDS.where(Post.author_id == bindparam("author_id")))
# EXISTS, not IN: SQLite then walks the newest posts and stops at a page's worth.
BY_TAG = _page_of(
    _VISIBLE_IDS.where(
        select(post_tags.c.post_id)
        .where(post_tags.c.post_id == Post.id, post_tags.c.tag_id == bindparam("tag_id"))
        .exists()
    )
)


def carried_by_visible_posts(now: Any) -> Any:
    """Give the condition for tags that at least one post readers may see carries.

    Readers know a tag only through such posts: one that only drafts, scheduled or
    trashed posts carry does not exist for them (no page, feed, list entry or name).
    """
    return (
        select(post_tags.c.tag_id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(post_tags.c.tag_id == Tag.id, *visible(now), Post.kind == "post")
        .exists()
    )


# A tag by its slug, if readers may know it.
TAG_BY_SLUG = select(Tag.id, Tag.name, Tag.slug).where(
    Tag.slug == bindparam("slug"), carried_by_visible_posts(NOW)
)
# The visible posts published since a moment (the week's candidates for "most read").
SINCE = _VISIBLE_IDS.where(Post.published_at >= bindparam("since", type_=UTCDateTime()))

_CARD_SELECT = select(
    Post.id,
    Post.slug,
    Post.title,
    Post.summary,
    Post.published_at,
    Post.reading_minutes,
    User.username,
    User.display_name,
    Post.cover_media_id,
    # Approved comments (#18): the kept count, by the post's key.
    select(CommentCount.approved).where(CommentCount.post_id == Post.id).scalar_subquery(),
).join(User, User.id == Post.author_id)
_CARDS = _CARD_SELECT.where(Post.id.in_(_IDS))
_TAGS = (
    select(post_tags.c.post_id, Tag.name, Tag.slug)
    .join(Tag, Tag.id == post_tags.c.tag_id)
    .where(post_tags.c.post_id.in_(_IDS))
    .order_by(Tag.name)
)


# --- loading -----------------------------------------------------------------------------


@dataclass(slots=True)
class Links:
    """The URL builders a list needs, made once per request (they carry its mount point)."""

    post: Callable[[str], str]
    tag: Callable[[str], str]
    author: Callable[[str], str]

    @classmethod
    def current(cls) -> Links:
        """Give the builders of this request (made on its first ask), or of no request."""
        request = current_request()
        links = request.context.get("listing.links") if request is not None else None
        if links is None:
            app = current_app()
            links = cls(
                app.url_builder("show_post", "slug"),
                app.url_builder("show_tag", "tag"),
                app.url_builder("show_author", "username"),
            )
            if request is not None:
                request.context["listing.links"] = links
        return links


def _card(row: Any, links: Links) -> tuple[Card, int | None]:
    """Give the card of a _CARD_SELECT row, and its cover's media id."""
    post_id, slug, title, summary, published_at, minutes, username, display, cover, n = row
    author = Link(display or username, username, links.author(username))
    card = Card(post_id, slug, title, summary, published_at, minutes, links.post(slug), author)
    card.comment_count = n or 0
    return card, cover


def _add_tags_and_covers(
    db: Session, found: dict[int, Card], cover_ids: dict[int, int], links: Links
) -> None:
    """Give these cards their tags (one query) and covers (a second, only if any)."""
    for post_id, name, tag_slug in db.connection().execute(_TAGS, {"ids": list(found)}):
        found[post_id].tags.append(Link(name, tag_slug, links.tag(tag_slug)))
    if cover_ids:  # a further query, only for a page that shows covers
        covers = covers_by_id(db, cover_ids.values(), current_app())
        for post_id, media_id in cover_ids.items():
            found[post_id].cover = covers.get(media_id)


def cards_by_id(db: Session, ids: Iterable[int], links: Links | None = None) -> dict[int, Card]:
    """Give the cards of these posts (those that exist), by id, each with its tags."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    links = links or Links.current()
    found: dict[int, Card] = {}
    cover_ids: dict[int, int] = {}
    for row in db.connection().execute(_CARDS, {"ids": ids}):
        card, cover = _card(row, links)
        found[card.id] = card
        if cover is not None:
            cover_ids[card.id] = cover
    _add_tags_and_covers(db, found, cover_ids, links)
    return found


def page_ids(
    db: Session, statement: Select, params: dict[str, Any], number: int, per_page: int
) -> tuple[list[int], bool]:
    """Give the ids of page `number` of a list statement, and whether another page follows.

    A page past the end (but the first) is a 404: one URL per page that exists.
    """
    values = {**params, "limit": per_page + 1, "offset": (number - 1) * per_page}
    ids = db.connection().execute(statement, values).scalars().all()
    if not ids and number > 1:
        raise NotFound("There is no such page.")
    return list(ids[:per_page]), len(ids) > per_page


@functools.cache
def _cards_of_page(statement: Select) -> Select:
    """Give the cards of one page of a list statement (NEWEST, BY_TAG...), newest first.

    Built once per list statement: the page's ids stay a subquery read from the index
    alone, and their cards come in the same statement (one fewer than ids, then cards).
    """
    page = statement.subquery()
    return _CARD_SELECT.join(page, page.c.id == Post.id).order_by(*NEWEST_FIRST)


def card_page(
    db: Session, statement: Select, params: dict[str, Any], number: int, per_page: int
) -> tuple[list[Card], bool]:
    """Give page `number` of a list as cards, and whether another page follows.

    A page past the end (but the first) is a 404, as in page_ids.
    """
    values = {**params, "limit": per_page + 1, "offset": (number - 1) * per_page}
    links = Links.current()
    cards: list[Card] = []
    cover_ids: dict[int, int] = {}
    for row in db.connection().execute(_cards_of_page(statement), values):
        card, cover = _card(row, links)
        cards.append(card)
        if cover is not None:
            cover_ids[card.id] = cover
    if not cards and number > 1:
        raise NotFound("There is no such page.")
    shown = cards[:per_page]
    if shown:  # the extra row only says that another page follows
        found = {card.id: card for card in shown}
        covers = {post_id: cover for post_id, cover in cover_ids.items() if post_id in found}
        _add_tags_and_covers(db, found, covers, links)
    return shown, len(cards) > per_page


def most_read(
    db: Session,
    now: datetime,
    views: Callable[[Iterable[int], int], list[tuple[int, int]]],
    *,
    days: int,
    count: int,
) -> list[tuple[int, int]]:
    """Give (id, views) of the most-read posts published in the last `days` days.

    `views(ids, limit)` ranks ids by views (the view-count store's most_viewed).
    """
    since = now - timedelta(days=days)
    candidates = db.connection().execute(SINCE, {"now": now, "since": since}).scalars().all()
    return views(candidates, count)
