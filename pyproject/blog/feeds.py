"""Feeds (Atom and RSS, site-wide, per tag, per author), the sitemap and robots.txt."""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import Select, case, distinct, func, literal_column, select
from sqlalchemy.orm import Session, selectinload

from pyproject.blog.caching import reader_page
from pyproject.blog.db import get_db
from pyproject.blog.models import Post, Tag, User, post_tags, utcnow
from pyproject.blog.posts import (
    author_or_404,
    post_list_query,
    published,
    tag_or_404,
    tagged,
    visible,
)
from pyproject.lib import App, Request, Response, current_app, render_template, url_for
from pyproject.lib.exceptions import NotFound

FEED_SIZE = 20
SITEMAP_MAX_URLS = 50_000
ATOM = "application/atom+xml"
RSS = "application/rss+xml"


# Characters XML 1.0 does not allow; a post may hold them (the editor keeps what is typed),
# so they are left out of XML answers rather than breaking the whole feed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def feed_response(template: str, mimetype: str, **context: Any) -> Response:
    return Response(_NOT_XML.sub("", render_template(template, **context)), mimetype=mimetype)


def changed_at(post: Post) -> Any:
    """Give when readers last saw a post change: saved, or published (if later)."""
    return max(post.updated_at, post.published_at) if post.published_at else post.updated_at


def _feed(request: Request, fmt: str, query: Select, title: str, page_url: str) -> Response:
    # Every entry's cover in one more query (an enclosure each), not one query an entry.
    query = published(query, utcnow()).where(Post.kind == "post")  # no pages (#17)
    query = query.options(selectinload(Post.cover_media)).limit(FEED_SIZE)
    posts = list(get_db(request).scalars(query).unique())
    updated = max((changed_at(p) for p in posts), default=utcnow())
    return feed_response(
        f"feeds/{fmt}.xml",
        ATOM if fmt == "atom" else RSS,
        posts=posts,
        feed_title=title,
        page_url=page_url,
        self_url=url_for(request.endpoint, _external=True, **request.view_args),
        updated=updated,
    )


@reader_page
def site_atom(request: Request) -> Response:
    return _feed(
        request, "atom", post_list_query(with_body=True), "", url_for("home", _external=True)
    )


@reader_page
def site_rss(request: Request) -> Response:
    return _feed(
        request, "rss", post_list_query(with_body=True), "", url_for("home", _external=True)
    )


@reader_page
def tag_atom(request: Request, tag: str) -> Response:
    found = tag_or_404(request, tag)
    query = post_list_query(with_body=True).where(tagged(found))
    page = url_for("show_tag", tag=found.slug, _external=True)
    return _feed(request, "atom", query, f"Posts tagged “{found.name}”", page)


@reader_page
def author_atom(request: Request, username: str) -> Response:
    author = author_or_404(request, username)
    query = post_list_query(with_body=True).where(Post.author_id == author.id)
    page = url_for("show_author", username=author.username, _external=True)
    return _feed(request, "atom", query, f"Posts by {author.name}", page)


# --- sitemap -----------------------------------------------------------------------------


# Readers saw a post change when it was saved or, if later, when it was published.
CHANGED_AT = case((Post.published_at > Post.updated_at, Post.published_at), else_=Post.updated_at)


def sitemap_entries(db: Session, start: int = 0, stop: int | None = None) -> list[tuple[str, Any]]:
    """Give (absolute URL, last modified or None) for the pages a search engine should see.

    The home page, every visible post (oldest first), every tag and every author page,
    in that order; `start` and `stop` slice that list, and only the slice is read.
    """
    now = utcnow()
    stop = SITEMAP_MAX_URLS * 1000 if stop is None else stop
    entries: list[tuple[str, Any]] = []
    if start == 0 and stop > 0:
        entries.append((url_for("home", _external=True), None))
    first, last = max(start - 1, 0), stop - 1  # the window in the list of posts
    posts = post_entries(db, now, first, last - first) if last > first else []
    entries += posts
    if posts and len(posts) == last - first:  # the window ends among the posts
        return entries
    # The window runs past the posts: what was read says how many there are, unless
    # the window began after them.
    count = first + len(posts) if posts or first == 0 else count_visible_posts(db, now)
    first, last = max(start - 1 - count, 0), stop - 1 - count  # and in the rest
    if last <= 0:
        return entries
    return entries + (tag_entries(db, now) + author_entries(db, now))[first:last]


def post_entries(db: Session, now: Any, offset: int, limit: int) -> list[tuple[str, Any]]:
    """Give sitemap entries of visible posts, oldest first, from `offset` on."""
    app = current_app()
    post_url = app.url_builder("show_post", "slug", _external=True)
    page_url = app.url_builder("show_page", "slug", _external=True)  # pages too (#17)
    rows = db.execute(
        select(Post.slug, CHANGED_AT, Post.kind, Post.noindex)
        .where(*visible(now))
        .order_by(Post.id)
        .offset(offset)
        .limit(limit)
    )
    # A post marked noindex keeps its place in the numbering, out of the list.
    return [
        ((page_url if kind == "page" else post_url)(slug), updated)
        for slug, updated, kind, noindex in rows
        if not noindex
    ]


def tag_entries(db: Session, now: Any) -> list[tuple[str, Any]]:
    """Give a sitemap entry for each tag readers know, with its posts' newest change."""
    tag_url = current_app().url_builder("show_tag", "tag", _external=True)
    rows = db.execute(
        select(Tag.slug, func.max(CHANGED_AT))
        .join(post_tags, post_tags.c.tag_id == Tag.id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(*visible(now))
        .group_by(Tag.id, Tag.slug)
        .order_by(Tag.slug)
    )
    return [(tag_url(slug), updated) for slug, updated in rows]


def author_entries(db: Session, now: Any) -> list[tuple[str, Any]]:
    """Give a sitemap entry for each author with visible posts, with their newest change."""
    author_url = current_app().url_builder("show_author", "username", _external=True)
    # Grouped by `author_id + 0`: by the bare column SQLite would walk the author index
    # in order and read every post whole for its times; the expression leaves it the
    # index of visible posts, which holds them.
    writer = (Post.author_id + literal_column("0")).label("writer")
    newest = (
        select(writer, func.max(CHANGED_AT).label("changed"))
        .where(*visible(now))
        .group_by(writer)
        .subquery()
    )
    rows = db.execute(
        select(User.username, newest.c.changed)
        .join(newest, newest.c.writer == User.id)
        .order_by(User.username)
    )
    return [(author_url(username), updated) for username, updated in rows]


def count_visible_posts(db: Session, now: Any) -> int:
    return db.scalar(select(func.count()).select_from(Post).where(*visible(now))) or 0


def count_sitemap_entries(db: Session) -> int:
    now = utcnow()
    tags = db.scalar(
        select(func.count(distinct(post_tags.c.tag_id)))
        .join(Post, Post.id == post_tags.c.post_id)
        .where(*visible(now))
    )
    authors = db.scalar(select(func.count(distinct(Post.author_id))).where(*visible(now)))
    return 1 + count_visible_posts(db, now) + (tags or 0) + (authors or 0)


@reader_page
def sitemap(request: Request) -> Response:
    """Every published post, tag page and author page; an index of sitemaps when too many."""
    db = get_db(request)
    total = count_sitemap_entries(db)
    if total <= SITEMAP_MAX_URLS:
        entries = sitemap_entries(db)
        return feed_response("feeds/sitemap.xml", "application/xml", entries=entries)
    pages = math.ceil(total / SITEMAP_MAX_URLS)
    urls = [url_for("sitemap_page", number=n, _external=True) for n in range(1, pages + 1)]
    return feed_response("feeds/sitemap_index.xml", "application/xml", urls=urls)


@reader_page
def sitemap_page(request: Request, number: int) -> Response:
    """One part of a sitemap too large for one file."""
    db = get_db(request)
    start = (number - 1) * SITEMAP_MAX_URLS
    if number < 1 or start >= count_sitemap_entries(db):
        raise NotFound("There is no such sitemap.")
    entries = sitemap_entries(db, start, start + SITEMAP_MAX_URLS)
    return feed_response("feeds/sitemap.xml", "application/xml", entries=entries)


def robots(request: Request) -> Response:
    """robots.txt: where the sitemap is, and what crawlers should leave alone."""
    lines = [
        "User-agent: *",
        *(
            f"Disallow: {path}"
            for path in ("/admin", "/drafts", "/login", "/search", "/setup", "/account", "/trash")
        ),
        "",
        f"Sitemap: {url_for('sitemap', _external=True)}",
        "",
    ]
    response = Response("\n".join(lines), mimetype="text/plain")
    response.headers.set("Cache-Control", "public, max-age=3600")
    return response


def register(app: App) -> None:
    app.jinja_env.filters["changed_at"] = changed_at
    app.add_route("/feed.atom", site_atom)
    app.add_route("/feed.rss", site_rss)
    app.add_route("/tags/<tag>/feed.atom", tag_atom)
    app.add_route("/authors/<username>/feed.atom", author_atom)
    app.add_route("/sitemap.xml", sitemap)
    app.add_route("/sitemaps/<int:number>.xml", sitemap_page)
    app.add_route("/robots.txt", robots)
