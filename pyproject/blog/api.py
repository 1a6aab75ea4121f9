"""The read-only JSON API: published posts, tags and search, with ETags and JSON errors."""

from __future__ import annotations

from typing import Any

from pyproject.blog.caching import reader_page
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
from pyproject.lib import App, Request, url_for

API_PER_PAGE = 10


def post_json(post: Post, *, full: bool = True) -> dict[str, Any]:
    """Give a post as the API shows it."""
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
    }
    if full:
        data["html"] = post.body_html
    return data


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
    return {
        "posts": [post_json(post) for post in page.items],
        **page_links("api_posts", page.number, page.has_next),
    }


@reader_page
def api_post(request: Request, slug: str) -> dict[str, Any]:
    """GET /api/posts/<slug>: one published post."""
    return {"post": post_json(get_post_or_404(request, slug, readers_only=True))}


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
    return {
        "query": results.query,
        "results": [
            {**post_json(hit.post, full=False), "snippet": str(hit.snippet)} for hit in results.hits
        ],
        **page_links("api_search", results.number, results.has_next, q=results.query),
    }


def register(app: App) -> None:
    app.add_route("/api/posts", api_posts)
    app.add_route("/api/posts/<slug:slug>", api_post)
    app.add_route("/api/tags", api_tags)
    app.add_route("/api/search", api_search)
