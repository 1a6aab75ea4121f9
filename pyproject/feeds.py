"""Feeds (Atom and RSS, site-wide, per tag, per author), the sitemap and robots.txt."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from pyproject.caching import reader_page
from pyproject.db import get_db
from pyproject.errors import NotFound
from pyproject.lib import App, Request, Response, render_template, url_for
from pyproject.models import Post, Tag, User, post_tags, utcnow
from pyproject.posts import post_list_query, published, tag_slug, visible

FEED_SIZE = 20
SITEMAP_MAX_URLS = 50_000
ATOM = "application/atom+xml"
RSS = "application/rss+xml"


def feed_response(template: str, mimetype: str, **context: Any) -> Response:
    return Response(render_template(template, **context), mimetype=mimetype)


def _feed(request: Request, fmt: str, query: Select, title: str, page_url: str) -> Response:
    posts = list(get_db(request).scalars(published(query, utcnow()).limit(FEED_SIZE)).unique())
    updated = max((p.updated_at for p in posts), default=utcnow())
    return feed_response(
        f"feeds/{fmt}.xml",
        ATOM if fmt == "atom" else RSS,
        posts=posts,
        feed_title=title,
        page_url=page_url,
        self_url=str(request.environ.get("PATH_INFO", "")),
        updated=updated,
    )


@reader_page
def site_atom(request: Request) -> Response:
    return _feed(request, "atom", post_list_query(), "", url_for("home", _external=True))


@reader_page
def site_rss(request: Request) -> Response:
    return _feed(request, "rss", post_list_query(), "", url_for("home", _external=True))


@reader_page
def tag_atom(request: Request, tag: str) -> Response:
    found = get_db(request).scalar(select(Tag).where(Tag.slug == tag_slug(tag)))
    if found is None:
        raise NotFound("There is no such tag.")
    query = post_list_query().where(
        Post.id.in_(select(post_tags.c.post_id).where(post_tags.c.tag_id == found.id))
    )
    page = url_for("show_tag", tag=found.slug, _external=True)
    return _feed(request, "atom", query, f"Posts tagged “{found.name}”", page)


@reader_page
def author_atom(request: Request, username: str) -> Response:
    author = get_db(request).scalar(select(User).where(User.username == username.lower()))
    if author is None:
        raise NotFound("There is no such author.")
    query = post_list_query().where(Post.author_id == author.id)
    page = url_for("show_author", username=author.username, _external=True)
    return _feed(request, "atom", query, f"Posts by {author.name}", page)


# --- sitemap -----------------------------------------------------------------------------


def sitemap_entries(db: Session) -> list[tuple[str, Any]]:
    """Give (absolute URL, last modified or None) for every page a search engine should see."""
    now = utcnow()
    entries: list[tuple[str, Any]] = [(url_for("home", _external=True), None)]
    for slug, updated in db.execute(
        select(Post.slug, Post.updated_at).where(*visible(now)).order_by(Post.id)
    ):
        entries.append((url_for("show_post", slug=slug, _external=True), updated))
    tag_rows = db.execute(
        select(Tag.slug, func.max(Post.updated_at))
        .join(post_tags, post_tags.c.tag_id == Tag.id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(*visible(now))
        .group_by(Tag.id, Tag.slug)
        .order_by(Tag.slug)
    )
    for slug, updated in tag_rows:
        entries.append((url_for("show_tag", tag=slug, _external=True), updated))
    author_rows = db.execute(
        select(User.username, func.max(Post.updated_at))
        .join(Post, Post.author_id == User.id)
        .where(*visible(now))
        .group_by(User.id, User.username)
        .order_by(User.username)
    )
    for username, updated in author_rows:
        entries.append((url_for("show_author", username=username, _external=True), updated))
    return entries


def count_sitemap_entries(db: Session) -> int:
    now = utcnow()
    posts = db.scalar(select(func.count()).select_from(Post).where(*visible(now))) or 0
    tags = db.scalar(
        select(func.count(distinct(post_tags.c.tag_id)))
        .join(Post, Post.id == post_tags.c.post_id)
        .where(*visible(now))
    )
    authors = db.scalar(select(func.count(distinct(Post.author_id))).where(*visible(now)))
    return 1 + posts + (tags or 0) + (authors or 0)


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
    entries = sitemap_entries(db)[start : start + SITEMAP_MAX_URLS]
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
    app.add_route("/feed.atom", site_atom)
    app.add_route("/feed.rss", site_rss)
    app.add_route("/tags/<tag>/feed.atom", tag_atom)
    app.add_route("/authors/<username>/feed.atom", author_atom)
    app.add_route("/sitemap.xml", sitemap)
    app.add_route("/sitemaps/<int:number>.xml", sitemap_page)
    app.add_route("/robots.txt", robots)
