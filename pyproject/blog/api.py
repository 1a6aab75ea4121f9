"""The JSON API: published posts, tags and search, with ETags and JSON errors.

Writing (posts and pictures, with a personal token) is pyproject/blog/writeapi.py (#20).

A post's `cover` is its cover picture as link previews show it (pyproject/blog/cover.py:
an absolute URL of a copy at most 1600 px wide in the picture's own format, its size and
the alt text the post's author gave it), or null.
"""

from __future__ import annotations

from typing import Any

from pyproject.blog.caching import reader_page
from pyproject.blog.cover import Cover, covers_of_posts
from pyproject.blog.db import get_db
from pyproject.blog.models import Post, utcnow
from pyproject.blog.posts import (
    get_post_or_404,
    page_number,
    paginate,
    post_list_query,
    published,
    tag_counts,
)
from pyproject.blog.search import search
from pyproject.blog.writeapi import register_writing
from pyproject.lib import App, Request, current_app, url_for

API_PER_PAGE = 10


def cover_json(cover: Cover | None) -> dict[str, Any] | None:
    """Give a post's cover as the API shows it: the link preview's copy and its alt text."""
    if cover is None:
        return None
    return {
        "url": cover.preview.url,
        "width": cover.preview.width,
        "height": cover.preview.height,
        "alt": cover.alt,
    }


def post_json(post: Post, covers: dict[int, Cover], *, full: bool = True) -> dict[str, Any]:
    """Give a post as the API shows it (`covers`: covers by post id, from posts_covers)."""
    data: dict[str, Any] = {
        "title": post.title,
        "slug": post.slug,
        "url": url_for("show_post", slug=post.slug, _external=True),
        "author": {
            "username": post.author.username,
            "name": post.author.name,
            "url": url_for("show_author", username=post.author.username, _external=True),
        },
        "published_at": post.published_at,
        "updated_at": post.updated_at,
        "tags": [tag.name for tag in post.tags],
        "summary": post.summary,
        "reading_minutes": post.reading_minutes,
        "cover": cover_json(covers.get(post.id)),
    }
    if full:
        data["html"] = post.body_html
    return data


def posts_covers(request: Request, posts: list[Post]) -> dict[int, Cover]:
    """Give the covers of these posts by post id, in two queries for the whole page."""
    return covers_of_posts(get_db(request), posts, current_app())


def page_links(endpoint: str, number: int, has_next: bool, **args: Any) -> dict[str, Any]:
    def link(n: int) -> str:
        return url_for(endpoint, page=n if n > 1 else None, _external=True, **args)

    return {
        "page": number,
        "next": link(number + 1) if has_next else None,
        "previous": link(number - 1) if number > 1 else None,
    }


@reader_page
def api_posts(request: Request) -> dict[str, Any]:
    """GET /api/posts?page=N: published posts, newest first."""
    page = paginate(
        get_db(request),
        published(post_list_query(with_body=True), utcnow()),
        page_number(request),
        API_PER_PAGE,
    )
    covers = posts_covers(request, page.items)
    return {
        "posts": [post_json(post, covers) for post in page.items],
        **page_links("api_posts", page.number, page.has_next),
    }


@reader_page
def api_post(request: Request, slug: str) -> dict[str, Any]:
    """GET /api/posts/<slug>: one published post."""
    post = get_post_or_404(request, slug, readers_only=True)
    return {"post": post_json(post, posts_covers(request, [post]))}


@reader_page
def api_tags(request: Request) -> dict[str, Any]:
    """GET /api/tags: every tag with its number of published posts."""
    rows = tag_counts(get_db(request))
    return {
        "tags": [
            {
                "name": row.name,
                "slug": row.slug,
                "posts": row.count,
                "url": url_for("show_tag", tag=row.slug, _external=True),
            }
            for row in rows
        ]
    }


@reader_page
def api_search(request: Request) -> dict[str, Any]:
    """GET /api/search?q=: published posts matching the query, best first."""
    results = search(get_db(request), request.args.get("q", ""), page_number(request))
    covers = posts_covers(request, [hit.post for hit in results.hits])
    return {
        "query": results.query,
        "results": [
            {**post_json(hit.post, covers, full=False), "snippet": str(hit.snippet)}
            for hit in results.hits
        ],
        **page_links("api_search", results.number, results.has_next, q=results.query),
    }


def register(app: App) -> None:
    app.add_route("/api/posts", api_posts)
    app.add_route("/api/posts/<slug:slug>", api_post)
    app.add_route("/api/tags", api_tags)
    app.add_route("/api/search", api_search)
    register_writing(app)  # writing with a token (#20): pyproject/blog/writeapi.py
