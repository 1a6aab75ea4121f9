"""Series, pinned posts and per-post options (#17).

A series is an ordered list of posts with its own page (/series/<slug>) and feed; each
post in one shows "Part 2 of 5 in <series>" with its neighbours (only posts readers can
see are counted). Up to three posts are pinned atop the home page: pinning a fourth
unpins the one pinned longest ago, and says so. A post's options, set from its page by
its author or an admin: kept out of search engines (robots noindex, out of the sitemap)
and a canonical URL elsewhere (for cross-posts). The custom excerpt for lists and link
previews is the editor's Summary field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pyproject.blog import listing
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.caching import reader_page
from pyproject.blog.db import begin_write, get_db
from pyproject.blog.feeds import _feed
from pyproject.blog.forms import Form
from pyproject.blog.models import Post, Series, SeriesPost, User, utcnow, visible
from pyproject.blog.posts import can_edit, get_post_or_404, post_list_query
from pyproject.blog.settings import bump_content_version, is_web_url
from pyproject.blog.slugs import is_valid_slug, slugify
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import BadRequest, Forbidden, NotFound

PINNED_MAX = 3
SERIES_FIELDS = ("title", "slug", "description")
OPTION_FIELDS = ("noindex", "canonical_override")
TITLE_MAX, DESCRIPTION_MAX = 200, 2000


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """A post's place in its series, as readers see it."""

    series: Series
    number: int
    total: int
    previous: Post | None
    next: Post | None


def visible_members(db: Session, series_id: int) -> list[Post]:
    """Give the posts of a series readers may see, in the series' order."""
    return list(
        db.scalars(
            select(Post)
            .join(SeriesPost, SeriesPost.post_id == Post.id)
            .where(SeriesPost.series_id == series_id, *visible(utcnow()))
            .order_by(SeriesPost.position, Post.id)
        )
    )


def part_of(db: Session, post: Post) -> Part | None:
    """Give the post's place in its series (None: in none, or not visible in it)."""
    series = db.scalar(
        select(Series)
        .join(SeriesPost, SeriesPost.series_id == Series.id)
        .where(SeriesPost.post_id == post.id)
    )
    if series is None:
        return None
    members = visible_members(db, series.id)
    ids = [member.id for member in members]
    if post.id not in ids:
        return None
    index = ids.index(post.id)
    return Part(
        series,
        index + 1,
        len(ids),
        members[index - 1] if index > 0 else None,
        members[index + 1] if index + 1 < len(ids) else None,
    )


def series_or_404(db: Session, slug: str) -> Series:
    series = db.scalar(select(Series).where(Series.slug == slug)) if is_valid_slug(slug) else None
    if series is None:
        raise NotFound("There is no such series.")
    return series


@reader_page
def show_series(request: Request, slug: str) -> str:
    """A series: its description and its posts, in order."""
    db = get_db(request)
    series = series_or_404(db, slug)
    members = visible_members(db, series.id)
    cards = listing.cards_by_id(db, [post.id for post in members])
    return render_template(
        "series/show.html",
        series=series,
        items=[cards[post.id] for post in members if post.id in cards],
    )


@reader_page
def series_atom(request: Request, slug: str) -> Response:
    """The series' posts as an Atom feed."""
    db = get_db(request)
    series = series_or_404(db, slug)
    members = select(SeriesPost.post_id).where(SeriesPost.series_id == series.id)
    query = post_list_query(with_body=True).where(Post.id.in_(members))
    page = url_for("show_series", slug=series.slug, _external=True)
    return _feed(request, "atom", query, f"Series “{series.title}”", page)


# --- writing: series ---------------------------------------------------------------------


def series_list(db: Session) -> list[tuple[Series, int]]:
    counts = (
        select(SeriesPost.series_id, func.count().label("n"))
        .group_by(SeriesPost.series_id)
        .subquery()
    )
    rows = db.execute(
        select(Series, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.series_id == Series.id)
        .order_by(Series.title, Series.id)
    )
    return [(series, n) for series, n in rows]


def check_series(db: Session, form: Form, series: Series | None) -> tuple[str, str, str]:
    title = form.text("title", label="Title", required=True, max_length=TITLE_MAX)
    description = form.text("description", label="Description", max_length=DESCRIPTION_MAX)
    slug = form.text("slug", label="Slug", max_length=200).lower()
    if slug and not is_valid_slug(slug):
        form.error("slug", "Use lower-case letters, digits and single hyphens, like my-series.")
    elif slug:
        owner = db.scalar(select(Series.id).where(Series.slug == slug))
        if owner is not None and (series is None or owner != series.id):
            form.error("slug", "Another series has this slug. Choose another one.")
    return title, slug, description


def free_series_slug(db: Session, base: str) -> str:
    taken = set(db.scalars(select(Series.slug).where(Series.slug.like(f"{base}%"))))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


@login_required
def series_index(request: Request) -> Any:
    """Every series (for writers), and the form to start one."""
    db = get_db(request)
    form = Form(request.form if request.method == "POST" else None, SERIES_FIELDS)
    if request.method == "POST":
        begin_write(db)
        title, slug, description = check_series(db, form, None)
        if form.ok:
            series = Series(
                title=title,
                slug=slug or free_series_slug(db, slugify(title) or "series"),
                description=description,
            )
            db.add(series)
            db.commit()
            flash(f"Series “{title}” started: add its posts below.", "success")
            return redirect(url_for("edit_series", slug=series.slug))
        db.rollback()
        page = render_template("series/index.html", all_series=series_list(db), form=form)
        return page, 422
    return render_template("series/index.html", all_series=series_list(db), form=form)


def addable_posts(db: Session, user: User) -> list[tuple[int, str]]:
    """Give the posts this writer may add to a series (theirs; every one for admins)."""
    query = select(Post.id, Post.title).where(Post.kind == "post", Post.deleted_at.is_(None))
    if not user.is_admin:
        query = query.where(Post.author_id == user.id)
    in_series = select(SeriesPost.post_id)
    query = query.where(Post.id.not_in(in_series)).order_by(Post.title, Post.id)
    return [(post_id, title) for post_id, title in db.execute(query)]


def members_of(db: Session, series_id: int) -> list[tuple[SeriesPost, Post]]:
    rows = db.execute(
        select(SeriesPost, Post)
        .join(Post, Post.id == SeriesPost.post_id)
        .where(SeriesPost.series_id == series_id)
        .order_by(SeriesPost.position, Post.id)
    )
    return [(member, post) for member, post in rows]


def edit_page(request: Request, series: Series, form: Form | None = None, status: int = 200):
    db = get_db(request)
    user = current_user(request)
    values = {"title": series.title, "slug": series.slug, "description": series.description}
    return render_template(
        "series/edit.html",
        series=series,
        form=form or Form(values, SERIES_FIELDS),
        members=members_of(db, series.id),
        addable=addable_posts(db, user),
        can_change=lambda post: can_edit(user, post),
    ), status


@login_required
def edit_series(request: Request, slug: str) -> Any:
    """Rename a series, add, move or remove its posts (each one small form, no script)."""
    db = get_db(request)
    series = series_or_404(db, slug)
    if request.method == "GET":
        return edit_page(request, series)
    user = current_user(request)
    begin_write(db)
    action = request.form.get("action", "")
    if action == "details":
        form = Form(request.form, SERIES_FIELDS)
        title, new_slug, description = check_series(db, form, series)
        if not user.is_admin and any(
            post.author_id != user.id for _, post in members_of(db, series.id)
        ):
            raise Forbidden("Only an administrator can rename a series with others' posts.")
        if not form.ok:
            db.rollback()
            return edit_page(request, series, form, 422)
        series.title, series.description = title, description
        series.slug = new_slug or series.slug
        message = "Series saved."
    elif action == "add":
        raw = request.form.get("post", "")
        post = db.get(Post, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None
        if post is None or post.kind != "post" or post.deleted_at is not None:
            raise BadRequest("Choose one of the posts offered.")
        if not can_edit(user, post):
            raise Forbidden("You can only add your own posts.")
        if db.get(SeriesPost, post.id) is not None:
            raise BadRequest("That post is in a series already.")
        last = db.scalar(
            select(func.max(SeriesPost.position)).where(SeriesPost.series_id == series.id)
        )
        db.add(SeriesPost(post_id=post.id, series_id=series.id, position=(last or 0) + 1))
        message = f"Added “{post.title}”."
    elif action in ("up", "down", "remove"):
        raw = request.form.get("post", "")
        members = members_of(db, series.id)
        index = next((i for i, (m, _) in enumerate(members) if str(m.post_id) == raw), None)
        if index is None:
            raise BadRequest("That post is not in this series.")
        member, post = members[index]
        if not can_edit(user, post):
            raise Forbidden("You can only move or remove your own posts.")
        order = [m for m, _ in members]
        if action == "remove":
            db.delete(member)
            order.pop(index)
            message = f"Removed “{post.title}” from the series."
        else:
            other = index - 1 if action == "up" else index + 1
            if 0 <= other < len(order):
                order[index], order[other] = order[other], order[index]
            message = f"Moved “{post.title}” {action}."
        for number, item in enumerate(order, 1):
            item.position = number
    else:
        raise BadRequest("Unknown action.")
    bump_content_version(db)
    db.commit()
    flash(message, "success")
    return redirect(url_for("edit_series", slug=series.slug))


# --- pins and per-post options -----------------------------------------------------------


# Built once (SQLAlchemy's compiled cache always hits), run on the connection (#13).
_PINNED = (
    select(Post.id)
    .where(Post.pinned_at.is_not(None), Post.kind == "post", *visible(listing.NOW))
    .order_by(Post.pinned_at.desc(), Post.id.desc())
    .limit(PINNED_MAX)
)


def pinned_ids(db: Session) -> list[int]:
    """Give the ids of the pinned posts readers may see, the newest pin first."""
    return list(db.connection().execute(_PINNED, {"now": utcnow()}).scalars())


@login_required
def pin_post(request: Request, slug: str) -> Response:
    """Pin a post atop the home page, or unpin it; a fourth pin unpins the oldest."""
    post = get_post_or_404(request, slug, check_author=True)
    db = get_db(request)
    if request.form.get("pin") == "off":
        post.pinned_at = None
        flash(f"“{post.title}” is no longer pinned.", "success")
    else:
        others = list(
            db.scalars(
                select(Post)
                .where(Post.pinned_at.is_not(None), Post.id != post.id)
                .order_by(Post.pinned_at, Post.id)
            )
        )
        post.pinned_at = utcnow()
        message = f"“{post.title}” is pinned to the top of the home page."
        while len(others) >= PINNED_MAX:
            oldest = others.pop(0)
            oldest.pinned_at = None
            message += f" At most {PINNED_MAX} posts are pinned: “{oldest.title}” was unpinned."
        flash(message, "success")
    db.commit()
    return redirect(url_for("show_post", slug=post.slug))


def check_options(form: Form) -> tuple[bool, str]:
    noindex = form.get("noindex") == "on"
    canonical = form.text("canonical_override", label="Canonical URL", max_length=500)
    if canonical and not is_web_url(canonical):
        form.error("canonical_override", "Give the full http(s) address of the original.")
    return noindex, canonical


@login_required
def post_options(request: Request, slug: str) -> Any:
    """Keep a post out of search engines, or point its canonical URL elsewhere."""
    post = get_post_or_404(request, slug, check_author=True)
    db = get_db(request)
    form = Form(request.form, OPTION_FIELDS)
    noindex, canonical = check_options(form)
    if not form.ok:
        page = render_template("series/options.html", post=post, form=form)
        return page, 422
    post.noindex, post.canonical_override = noindex, canonical
    db.commit()
    flash("Options saved.", "success")
    return redirect(url_for("show_post", slug=post.slug))


def options_form(post: Post) -> Form:
    values = {
        "noindex": "on" if post.noindex else "",
        "canonical_override": post.canonical_override,
    }
    return Form(values, OPTION_FIELDS)


def register(app: App) -> None:
    """Add the series pages and feeds, pins and post options; templates get `post|part`."""
    app.add_route("/series", series_index, methods=["GET", "POST"])
    app.add_route("/series/<slug:slug>", show_series)
    app.add_route("/series/<slug:slug>/feed.atom", series_atom)
    app.add_route("/series/<slug:slug>/edit", edit_series, methods=["GET", "POST"])
    app.add_route("/posts/<slug:slug>/pin", pin_post, methods=["POST"])
    app.add_route("/posts/<slug:slug>/options", post_options, methods=["POST"])

    def part(post: Post) -> Part | None:
        from pyproject.lib.app import current_request

        request = current_request()
        if request is None or not post.id:
            return None
        key = ("series_part", post.id)  # asked twice a page (JSON-LD, the banner): once
        if key not in request.context:
            request.context[key] = part_of(get_db(request), post)
        return request.context[key]

    app.jinja_env.filters["series_part"] = part
    app.jinja_env.globals["post_options_form"] = options_form
