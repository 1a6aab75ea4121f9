"""Standalone pages (About, Now, Contact...) at /<slug>: posts of kind "page" (#17).

A page is written with the posts' editor (/pages/new), so it has the same revisions,
autosave, conflict handling, scheduling and trash; only where it is shown differs: at
/<slug>, never in the home stream, archive, tag pages or post feeds (listing.py and
feeds.py read kind "post"), but in the sitemap and search. A page's slug may not be the
first path segment of any route (nor of the static and media folders): refused with a
422 naming the clash, and a route added later that takes an existing page's slug stops
the app at start-up, naming both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pyproject.blog.auth import current_user, login_required
from pyproject.blog.caching import reader_page
from pyproject.blog.db import Database, get_db
from pyproject.blog.models import Post
from pyproject.blog.posts import NO_POST, answer_for_unused_slug, can_edit, refuse_unseen
from pyproject.blog.slugs import is_valid_slug
from pyproject.lib import App, Request, current_app, render_template, url_for
from pyproject.lib.exceptions import MethodNotAllowed, NotFound, Redirect
from pyproject.lib.routing import RoutingError

KINDS = ("post", "page")
PAGE_RULE = "/<slug:slug>"


def taken_segments(app: App) -> dict[str, str]:
    """Give the first path segments the site's routes and folders use, each with its rule."""
    taken: dict[str, str] = {}
    for rule in app.router.rules:
        if rule.rule == PAGE_RULE:
            continue
        first = rule.rule.split("/", 2)[1]
        if first and "<" not in first:
            taken.setdefault(first, rule.rule)
    taken.setdefault("static", "the static files (/static/...)")
    media_url = str(app.config.get("MEDIA_URL") or "/media/").strip("/").split("/")[0]
    if media_url:
        taken.setdefault(media_url, f"the media files (/{media_url}/...)")
    return taken


def _pattern_clash(app: App, slug: str) -> str | None:
    """Give the rule of a route with a placeholder first segment that takes /<slug>."""
    for rule in app.router.rules:
        first = rule.rule.split("/", 2)[1]
        if rule.rule != PAGE_RULE and "<" in first and rule.match("/" + slug) is not None:
            return rule.rule
    return None


def route_clash(slug: str, app: App | None = None) -> str | None:
    """Give why a page may not have this slug (the route it would hide), or None."""
    app = app or current_app()
    rule = taken_segments(app).get(slug) or _pattern_clash(app, slug)
    if rule is None:
        return None
    return f"“{slug}” is taken by the site's own address {rule}. Choose another slug."


def url_of(post: Post) -> str:
    """Give the reader's address of a post or a page."""
    if post.kind == "page":
        return url_for("show_page", slug=post.slug)
    return url_for("show_post", slug=post.slug)


def check_page_slugs(app: App, database: Database) -> None:
    """Stop the app if a route takes the slug of an existing page (naming both).

    A database not migrated yet (no kind column) has no pages to check.
    """
    try:
        with database.read() as db:
            slugs = list(db.scalars(select(Post.slug).where(Post.kind == "page")))
    except SQLAlchemyError:  # not migrated yet: no pages
        return
    for slug in slugs:
        problem = route_clash(slug, app)
        if problem:
            raise RoutingError(f"the page /{slug} and a route clash: {problem}")


# --- views -------------------------------------------------------------------------------


def answer_as_the_router_would(request: Request) -> None:
    """Raise what the router gives when no page rule exists: 405 for a path another rule
    takes with other methods (GET /logout), 308 to the same path with a slash."""
    rules = [rule for rule in current_app().router.rules if rule.rule != PAGE_RULE]
    methods = [rule.methods for rule in rules if rule.match(request.path) is not None]
    if methods:
        raise MethodNotAllowed(sorted(set().union(*methods) | {"OPTIONS"}))
    if any(rule.match(request.path + "/") is not None for rule in rules):
        location = request.path + "/"
        raise Redirect(
            f"{location}?{request.query_string}" if request.query_string else location, 308
        )


@reader_page
def show_page(request: Request, slug: str) -> Any:
    """A standalone page at /<slug>."""
    if not is_valid_slug(slug):
        raise NotFound(NO_POST)
    db = get_db(request)
    page = db.scalar(select(Post).where(Post.slug == slug))
    user = current_user(request)
    if page is None:
        answer_as_the_router_would(request)
        answer_for_unused_slug(request, db, slug, user)  # an earlier slug; else 410, 404
    if page.kind != "page":
        raise Redirect(url_for("show_post", slug=slug), 301)
    refuse_unseen(page, user)
    return render_template("pages/show.html", post=page, can_edit=can_edit(user, page))


@login_required
def new_page(request: Request) -> Any:
    """The editor for a new page (the posts' editor, saving a post of kind "page")."""
    from pyproject.blog.editor import POST_FIELDS, editor_page
    from pyproject.blog.forms import Form

    return editor_page(request, Form({"status": "draft", "kind": "page"}, POST_FIELDS), None)


def register(app: App) -> None:
    """Add /pages/new; /<slug> is added last of all routes (see app.py)."""
    app.add_route("/pages/new", new_page)


def register_last(app: App) -> None:
    """Add the pages' own rule after every other route, so every other path wins."""
    app.add_route(PAGE_RULE, show_page)
