"""Reading (#23): what a reader finds around a post's text, and the archive by month.

The end of a post (the previous and next posts, its author with bio and picture, up to
three posts sharing its tags) costs one statement of three small indexed queries, and is
only made when a post page is rendered (reader pages are kept by the page cache). The
archive groups a page of cards by year and month, with the counts of every month from one
index-only query. Template filters give dates as dates and a name for an untitled note.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import (
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from pyproject.blog import listing
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.cover import Cover, choices_for, covers_by_id
from pyproject.blog.db import get_db
from pyproject.blog.forms import Form
from pyproject.blog.markup import has_placed_toc, toc_position
from pyproject.blog.models import (
    Post,
    SiteState,
    UTCDateTime,
    post_tags,
    utcnow,
    visible,
    visible_sql,
)
from pyproject.lib import (
    App,
    Request,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)

RELATED_POSTS = 3
RELATED_WINDOW = 20  # the newest posts of each tag that related posts are chosen from
NOTE_NAME_WORDS = 8
MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)


# --- the end of a post ---------------------------------------------------------------------


@dataclass(slots=True)
class PostEnd:
    """What follows a post's text: where to go next, and who wrote it."""

    previous: Neighbour | None = None  # the post published before this one
    next: Neighbour | None = None  # the one published after it
    related: list[Neighbour] = field(default_factory=list)
    author_picture: Cover | None = None


@dataclass(slots=True)
class Neighbour:
    """What the end of a post shows of another post: a link, a name and a date."""

    id: int
    slug: str
    title: str
    summary: str
    published_at: datetime | None
    url: str = ""


_OLDER, _NEWER, _RELATED = 1, 2, 3
_COLUMNS = (Post.id, Post.slug, Post.title, Post.summary, Post.published_at)
_HERE_AT = bindparam("here_at", type_=UTCDateTime())
_HERE_ID = bindparam("post_id")


# The visible posts by id, with the columns that rank related posts (0028).
BY_ID_INDEX = "ix_posts_visible_by_id"


def _ranked_on_sqlite(candidates: Any) -> Any:
    """Give the related posts' ranking on SQLite, read from the BY_ID_INDEX alone.

    SQLite's planner prefers a lookup by rowid, not knowing that a post's row holds its
    body before the columns that say whether it is visible: checking a candidate in the
    table read its whole body (5 to 6 pages; about 80 candidates a page, most of them not
    in SQLite's cache on a long-tail page: 0.45 ms, 0.18 ms from the index). So the FROM
    names the index (INDEXED BY), and the rule is visible_sql's text of `visible`.
    """
    post_id, published_at = literal_column("posts.id"), literal_column("posts.published_at")
    shown = text(f"{visible_sql('sqlite')} AND posts.kind = 'post'").bindparams(listing.NOW)
    return (
        select(candidates.c.post_id, candidates.c.shared)
        .select_from(candidates, text(f"posts INDEXED BY {BY_ID_INDEX}"))
        .where(post_id == candidates.c.post_id, post_id != _HERE_ID, shown)
        .order_by(candidates.c.shared.desc(), published_at.desc(), post_id.desc())
        .limit(RELATED_POSTS)
        .subquery()
    )


@functools.lru_cache(maxsize=64)
def other_posts_statement(tag_count: int, dialect: str = "sqlite") -> Any:
    """Give one statement for the post before, the post after, and the related ones.

    A UNION ALL of three small queries, each through an index: the visible posts' index
    from the post's place in time either way, and post_tags' (tag_id, post_id) index for
    up to RELATED_POSTS posts sharing the most tags with it (ties to the newest). Each row
    says which it is (`role`) and how many tags it shares.

    Related posts are weighed among the RELATED_WINDOW newest posts of each of its tags
    (by id, from the index alone): counting over every post of a tag read 20,000 rows and
    cost 40 to 250 ms a page on a blog of 100,000 posts (50 tags); a window of 20 costs
    about 0.35 ms there, 50 about 1 ms. So on a large blog the related posts are the
    recent ones sharing the most tags, not the best of all time.

    Built once for each number of tags and dialect, with bound parameters (`now`, the
    post's `published_at` and `post_id`, `tag_0`...): building the statement per request
    cost more CPU than running it.
    """
    key = tuple_(Post.published_at, Post.id)
    here = tuple_(_HERE_AT, _HERE_ID)
    shown = (*visible(listing.NOW), Post.kind == "post")

    def neighbour(role: int) -> Any:
        return select(*_COLUMNS, literal(role).label("role"), literal(0).label("shared"))

    # Older posts are visible as of the post's own time (it is published, so before now):
    # with `published_at <= now` beside the key's bound, SQLite ranged over the index from
    # now down, through every newer post (8 ms for a post in the middle of 100,000 posts;
    # 0.05 ms from the post's own time).
    older = neighbour(_OLDER).where(*visible(_HERE_AT), Post.kind == "post", key < here)
    older = older.order_by(*listing.NEWEST_FIRST)
    newer = neighbour(_NEWER).where(*shown, key > here)
    newer = newer.order_by(Post.published_at.asc(), Post.id.asc())
    parts = [older.limit(1).subquery().select(), newer.limit(1).subquery().select()]
    if tag_count:
        newest_of_each_tag = [
            select(post_tags.c.post_id)
            .where(post_tags.c.tag_id == bindparam(f"tag_{number}"))
            .order_by(post_tags.c.post_id.desc())
            .limit(RELATED_WINDOW)
            .subquery()
            .select()
            for number in range(tag_count)
        ]
        window = union_all(*newest_of_each_tag).subquery()
        candidates = (
            select(window.c.post_id, func.count().label("shared"))
            .group_by(window.c.post_id)
            .subquery()
        )
        if dialect == "sqlite":  # ranked from an index, then only the chosen rows read
            ranked = _ranked_on_sqlite(candidates)
            related = select(*_COLUMNS, literal(_RELATED).label("role"), ranked.c.shared)
            related = related.join(ranked, ranked.c.post_id == Post.id)
        else:  # PostgreSQL keeps long bodies out of the row (TOAST): read the rows
            related = (
                select(*_COLUMNS, literal(_RELATED).label("role"), candidates.c.shared)
                .join(candidates, candidates.c.post_id == Post.id)
                .where(Post.id != _HERE_ID, *shown)
                .order_by(candidates.c.shared.desc(), Post.published_at.desc(), Post.id.desc())
                .limit(RELATED_POSTS)
            )
        parts.append(related.subquery().select())
    return union_all(*parts)


def post_end(db: Session, post: Post, app: App | None = None) -> PostEnd:
    """Give what the end of a post shows (nothing of other posts for one not published).

    One statement (other_posts_statement); the author's picture, when there is one, adds
    a second.
    """
    app = app or current_app()
    end = PostEnd()
    picture_id = getattr(post.author, "picture_media_id", None)
    if picture_id is not None:
        end.author_picture = covers_by_id(db, [picture_id], app).get(picture_id)
    if not post.is_published or post.kind != "post":
        return end
    link = listing.Links.current().post
    related: list[tuple[int, datetime, Neighbour]] = []
    tag_ids = [tag.id for tag in post.tags]
    params = {"now": utcnow(), "here_at": post.published_at, "post_id": post.id}
    params.update((f"tag_{number}", tag_id) for number, tag_id in enumerate(tag_ids))
    # On the connection: a Core statement needs none of the ORM session's machinery.
    connection = db.connection()
    statement = other_posts_statement(len(tag_ids), connection.dialect.name)
    for row in connection.execute(statement, params):
        post_id, slug, title, summary, published_at, role, shared = row
        other = Neighbour(post_id, slug, title, summary, published_at, link(slug))
        if role == _OLDER:
            end.previous = other
        elif role == _NEWER:
            end.next = other
        else:
            related.append((shared, published_at, other))
    # A union keeps no order of its own: most tags shared first, then the newest.
    related.sort(key=lambda item: (item[0], item[1], item[2].id), reverse=True)
    end.related = [other for _, _, other in related]
    return end


# --- the table of contents -----------------------------------------------------------------


def body_with_toc(post: Any, nav: str) -> Markup:
    """Give a post's HTML with its automatic table of contents (`nav`) in its place.

    None when the post turned it off, or placed its own with [TOC]; otherwise first in a
    long post, and never above the first paragraph of a shorter one (markup.toc_position).
    """
    html = post.body_html
    if not post.toc_html or getattr(post, "toc_mode", "auto") == "off" or has_placed_toc(html):
        return Markup(html)  # noqa: S704  # nosec B704: the sanitiser's own output
    at = toc_position(html, post.word_count)
    # str(): Markup + str would escape the post's HTML; both pieces are already safe.
    return Markup(html[:at] + str(nav) + html[at:])  # noqa: S704  # nosec B704


# --- names and dates -----------------------------------------------------------------------


def headline(item: Any) -> str:
    """Give what names a post: its title, or an untitled note's first words."""
    if item.title:
        return item.title
    words = (item.summary or "").replace("…", " ").split()
    if not words:
        return "Untitled note"
    name = " ".join(words[:NOTE_NAME_WORDS])
    return name + ("…" if len(words) > NOTE_NAME_WORDS else "")


def long_date(value: datetime | None, zone: Any = None) -> str:
    """Give a time as a date a reader says: "3 December 2026" (in the site's zone)."""
    if value is None:
        return ""
    if zone is None:
        from pyproject.blog.settings import site_settings  # (settings reads the database)

        zone = site_settings().zone
    local = value.astimezone(zone)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}"


# --- the archive ---------------------------------------------------------------------------


@dataclass(slots=True)
class Month:
    year: int
    month: int
    count: int  # visible posts that month, on every page
    cards: list[listing.Card] = field(default_factory=list)

    @property
    def name(self) -> str:
        return MONTHS[self.month - 1]


@dataclass(slots=True)
class Year:
    year: int
    count: int
    months: list[Month] = field(default_factory=list)


@functools.lru_cache(maxsize=16)
def _month_counts_statement(months: int) -> Any:
    """Give the statement counting visible posts in `months` consecutive months.

    Bound parameters `now` and `edge_0` ... `edge_{months}`: the months' edges as UTC
    times (the site's own month boundaries, worked out here: SQL of both databases cannot
    share time zones). One pass over the visible-posts index between the first and last
    edge, each month a count of its own.
    """
    edges = [bindparam(f"edge_{n}", type_=UTCDateTime()) for n in range(months + 1)]
    published = Post.published_at
    in_range = (published >= edges[0], published < edges[-1])
    return select(
        *(
            func.count(case((and_(published >= edges[n], published < edges[n + 1]), 1)))
            for n in range(months)
        )
    ).where(*visible(listing.NOW), Post.kind == "post", *in_range)


# What the visible posts are: the site version (every change readers could see bumps it)
# and the newest visible publication time (a scheduled post falling due becomes the
# newest), the two that make every reader page's ETag (caching.py). Read on the request's
# connection just before the count, in its snapshot (SQLite) or statement by statement
# (a PostgreSQL GET): the counts are never older than their key. (The validators, asked
# on another connection after a signed-in request's snapshot began, could be newer.)
_POSTS_STATE = select(
    select(SiteState.version).where(SiteState.id == 1).scalar_subquery(),
    select(func.max(Post.published_at)).where(*visible(listing.NOW)).scalar_subquery(),
)

# Month counts kept by each app (its extensions), by what the visible posts were when
# they were counted. Any change readers could see gives a new key; at most this many.
_KEPT_MONTHS = 32


def month_counts(
    db: Session, zone: Any, now: datetime, cards: list[listing.Card]
) -> dict[tuple[int, int], int]:
    """Give how many visible posts each month of the years these cards show has.

    Every month of those years (in the site's time zone), so that a year's total is the
    sum of its months. Counting a year's months in SQL costs 14 to 40 ms on a blog of
    100,000 posts (20,000 a year), so the counts are kept, by the site version and the
    newest visible post read just before the count (_POSTS_STATE): every page of the archive
    and every worker's next request after a change ask the same few years (#13).
    """
    years = [card.published_at.astimezone(zone).year for card in cards if card.published_at]
    if not years:
        return {}
    first, last = min(years), max(years)
    connection = db.connection()
    version, newest = connection.execute(_POSTS_STATE, {"now": now}).one()
    key = (version, newest, getattr(zone, "key", str(zone)), first, last)
    kept_months: dict[tuple[Any, ...], dict[tuple[int, int], int]]
    kept_months = current_app().extensions.setdefault("reading.month_counts", {})
    kept = kept_months.get(key)
    if kept is not None:
        return kept
    months = [(year, month) for year in range(first, last + 1) for month in range(1, 13)]
    edges = [datetime(year, month, 1, tzinfo=zone) for year, month in months]
    edges.append(datetime(last + 1, 1, 1, tzinfo=zone))
    params: dict[str, Any] = {"now": now}
    params.update((f"edge_{n}", edge.astimezone(UTC)) for n, edge in enumerate(edges))
    row = connection.execute(_month_counts_statement(len(months)), params).one()
    counts = {month: count for month, count in zip(months, row, strict=True) if count}
    if len(kept_months) >= _KEPT_MONTHS:
        kept_months.clear()
    kept_months[key] = counts
    return counts


def group_by_month(
    cards: list[listing.Card], counts: dict[tuple[int, int], int], zone: Any
) -> list[Year]:
    """Give a page of cards (newest first) grouped by year and month, with their counts."""
    years: list[Year] = []
    for card in cards:
        if card.published_at is None:
            continue
        local = card.published_at.astimezone(zone)
        if not years or years[-1].year != local.year:
            year_total = sum(n for (y, _), n in counts.items() if y == local.year)
            years.append(Year(local.year, year_total))
        months = years[-1].months
        if not months or months[-1].month != local.month:
            count = counts.get((local.year, local.month), 0)
            months.append(Month(local.year, local.month, count))
        months[-1].cards.append(card)
    return years


# --- the author's picture ------------------------------------------------------------------


@login_required
def account_picture(request: Request) -> Any:
    """Choose the picture shown beside your bio at the end of your posts (from your library)."""
    user = current_user(request)
    db = get_db(request)
    choices = choices_for(db, user.id)
    form = Form(
        request.form if request.method == "POST" else {"picture": str(user.picture_media_id or "")},
        ("picture",),
    )
    if request.method == "POST":
        chosen = form.get("picture")
        allowed = {str(choice.id) for choice in choices}
        if chosen and chosen not in allowed:
            form.error("picture", "Choose a picture of your media library, or none.")
        else:
            user.picture_media_id = int(chosen) if chosen else None
            db.commit()
            flash("Your picture is saved." if chosen else "Your picture is removed.", "success")
            return redirect(url_for("account"))
    current = covers_by_id(db, [user.picture_media_id], current_app())
    page = render_template(
        "auth/picture.html",
        form=form,
        choices=choices,
        current=current.get(user.picture_media_id) if user.picture_media_id else None,
    )
    return (page, 422) if form.errors else page


def register(app: App) -> None:
    """Add the picture page, and the reading filters to the templates."""
    app.add_route("/account/picture", account_picture, methods=["GET", "POST"])
    app.jinja_env.filters["headline"] = headline
    app.jinja_env.filters["long_date"] = long_date
    app.jinja_env.globals["body_with_toc"] = body_with_toc
