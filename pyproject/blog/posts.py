"""Reading: the home page, archive, one post, tags, authors, and the author's dashboard."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import Row, Select, bindparam, delete, exists, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, defer, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from pyproject.blog import jobs, listing, roles, stats
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.caching import reader_page
from pyproject.blog.cover import Cover, covers_of_posts
from pyproject.blog.db import get_db, lock_post_writes
from pyproject.blog.models import (
    CommentCount,
    GoneSlug,
    OldSlug,
    Post,
    Reaction,
    SeriesPost,
    Tag,
    User,
    post_tags,
    utcnow,
    visible,
)
from pyproject.blog.reading import group_by_month, month_counts, post_end
from pyproject.blog.settings import site_settings
from pyproject.blog.slugs import is_valid_slug
from pyproject.blog.webmention import shown_mentions_of
from pyproject.lib import App, Request, Response, current_app, render_template, url_for
from pyproject.lib.exceptions import Forbidden, Gone, NotFound, Redirect
from pyproject.lib.response import Shared

PER_PAGE = 10
POPULAR_DAYS, POPULAR_COUNT = 7, 5


# --- queries -----------------------------------------------------------------------------


def published(query: Select, now: datetime) -> Select:
    """Limit a query to posts readers may see (the rule: models.visible)."""
    return query.where(*visible(now))


def page_number(request: Request) -> int:
    """Give ?page=N as a positive int; anything else is a 404 (one URL per page).

    The number is kept on the request: a page of a list names itself, page included,
    as its canonical URL.
    """
    raw = request.args.get("page")
    if raw is None:
        number = 1
    elif not (raw.isascii() and raw.isdigit()) or raw.startswith("0") or len(raw) > 6:
        raise NotFound("There is no such page.")
    else:
        number = int(raw)
    request.context["page_number"] = number
    return number


def with_query(request: Request, location: str) -> str:
    """Give a location with the request's query string kept."""
    return f"{location}?{request.query_string}" if request.query_string else location


def moved_to(request: Request, name: str, value: str) -> NoReturn:
    """Redirect for good to this same page with the URL's `name` part set to `value`.

    A POST is redirected with 308, so that it is sent again, body and all.
    """
    args = {**request.view_args, name: value}
    location = with_query(request, url_for(request.endpoint, **args))
    raise Redirect(location, 301 if request.method in ("GET", "HEAD") else 308)


@dataclass
class Page:
    """One page of a list (posts, or search hits): its items and where the neighbours are.

    A page of search results also says what was searched for, as `query`.
    """

    items: list[Any]
    number: int
    has_next: bool
    query: str = ""

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def hits(self) -> list[Any]:
        """The items, by the name the search API gives them."""
        return self.items


def paginate(db: Session, query: Select, number: int, per_page: int = PER_PAGE) -> Page:
    """Give page `number` of `query`; a page past the end (but the first) is a 404.

    The page's ids come first, from the index alone (skipping rows there is cheap, even
    thousands of pages deep); then only those posts are loaded.
    """
    ids = list(
        db.scalars(
            query.with_only_columns(Post.id).limit(per_page + 1).offset((number - 1) * per_page)
        )
    )
    rows = db.scalars(query.where(Post.id.in_(ids))).unique().all() if ids else []
    if not rows and number > 1:
        raise NotFound("There is no such page.")
    return Page(list(rows[:per_page]), number, len(rows) > per_page)


def post_list_query(*, with_body: bool = False) -> Select:
    """Give the select for post lists: newest first, tags loaded for the whole page at once.

    Lists show no bodies: those columns (most of a post's bytes) are only read for feeds.
    """
    query = select(Post).options(selectinload(Post.tags))
    if not with_body:
        query = query.options(defer(Post.body_md), defer(Post.body_html), defer(Post.toc_html))
    return query.order_by(Post.published_at.desc(), Post.id.desc())


def most_read_ids(db: Session, now: datetime) -> list[tuple[int, int]]:
    """Give (id, views) of the posts most read in the last week (the day buckets, #22)."""
    return stats.most_read(db, now, days=POPULAR_DAYS, count=POPULAR_COUNT)


def card_page(
    db: Session,
    statement: Select,
    params: dict[str, Any],
    number: int,
    per_page: int | None = None,
) -> Page:
    """Give page `number` of a reader's list (a listing statement) as a Page of cards.

    `per_page` defaults to the site settings' posts per page (#17).
    """
    per_page = per_page or site_settings().posts_per_page
    items, has_next = listing.card_page(db, statement, params, number, per_page)
    return Page(items, number, has_next)


def can_edit(user: User | None, post: Post) -> bool:
    return roles.can_edit_post(user, post)  # its author, editors and admins (#20)


# Built once: SQLAlchemy then compiles it once per process.
_POST_BY_SLUG = select(Post).where(Post.slug == bindparam("slug"))
_TAGS_OF_POST = (
    select(Tag)
    .join(post_tags, post_tags.c.tag_id == Tag.id)
    .where(post_tags.c.post_id == bindparam("post_id"))
    .order_by(Tag.name)
)


@dataclass(frozen=True, slots=True)
class PostFacts:
    """What a post page's later parts would find, asked in the post's own statement.

    The page skips a part's query when its answer is known to be empty: most posts are in
    no series and have no comments, Webmentions or fediverse reactions. The defaults say
    "unknown: ask", for a post looked up without them.
    """

    in_series: bool = True
    mentions: bool = True
    reactions: bool = True
    comment_counts: tuple[int, int] | None = None  # (approved, threads); None: unknown


UNKNOWN_FACTS = PostFacts()


def _count_of(column: Any) -> Any:
    return select(column).where(CommentCount.post_id == Post.id).scalar_subquery()


# What a post page shows of the post and its author, read as one row (no ORM objects: the
# identity map, the joined loader and the rollback that expires them cost more than the
# lookup itself), with PostFacts' columns, each a keyed lookup correlated to the post's row
# (mentions with mentions_of's own condition).
_SHOWN_POST_COLUMNS = (
    Post.id,
    Post.author_id,
    Post.title,
    Post.slug,
    Post.body_html,
    Post.toc_html,
    Post.toc_mode,
    Post.summary,
    Post.status,
    Post.word_count,
    Post.reading_minutes,
    Post.created_at,
    Post.updated_at,
    Post.published_at,
    Post.deleted_at,
    Post.cover_media_id,
    Post.comments,
    Post.kind,
    Post.noindex,
    Post.canonical_override,
    Post.pinned_at,
)


@functools.lru_cache(maxsize=2)
def _post_page_by_slug(dialect: str) -> Select:
    """Give the post page's statement: the post, its author, PostFacts' columns and its
    tags, as a JSON array of [id, name, slug] by name (one statement, not two: on
    PostgreSQL a round trip fewer, #13). Built once per dialect."""
    tag_row = (Tag.id, Tag.name, Tag.slug)
    if dialect == "postgresql":
        tags = func.json_agg(aggregate_order_by(func.json_build_array(*tag_row), Tag.name))
    else:  # SQLite: in no order; sorted by name in Python (code points: its BINARY order)
        tags = func.json_group_array(func.json_array(*tag_row))
    tags_of_post = (
        select(tags)
        .select_from(post_tags)
        .join(Tag, Tag.id == post_tags.c.tag_id)
        .where(post_tags.c.post_id == Post.id)
        .scalar_subquery()
    )
    return (
        select(
            *_SHOWN_POST_COLUMNS,
            User.username,
            User.display_name,
            User.bio,
            User.picture_media_id,
            exists().where(SeriesPost.post_id == Post.id).label("in_series"),
            exists(shown_mentions_of(Post.id)).label("mentions"),
            exists().where(Reaction.post_id == Post.id).label("reactions"),
            _count_of(CommentCount.approved).label("approved"),
            _count_of(CommentCount.threads).label("threads"),
            tags_of_post.label("tags"),
        )
        .join(User, User.id == Post.author_id)
        .where(Post.slug == bindparam("slug"))
    )


@dataclass(slots=True)
class ShownAuthor:
    """What a post page shows of its author."""

    id: int
    username: str
    display_name: str
    bio: str
    picture_media_id: int | None
    url: str

    @property
    def name(self) -> str:
        return self.display_name or self.username


@dataclass(slots=True)
class ShownTag:
    """A tag as a post page shows it (and the end of the post weighs related posts by)."""

    id: int
    name: str
    slug: str
    url: str


@dataclass(slots=True)
class ShownPost:
    """A post as its page shows it: the columns of _SHOWN_POST_COLUMNS, read-only.

    It answers what the templates, filters and helpers of the page ask of a Post (they
    take either), so a refused comment shows the same page with the ORM's Post.
    """

    id: int
    author_id: int
    title: str
    slug: str
    body_html: str
    toc_html: str
    toc_mode: str
    summary: str
    status: str
    word_count: int
    reading_minutes: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    deleted_at: datetime | None
    cover_media_id: int | None
    comments: str
    kind: str
    noindex: bool
    canonical_override: str
    pinned_at: datetime | None
    author: ShownAuthor = None  # type: ignore[assignment]  # (set at once by shown_post)
    tags: list[ShownTag] = field(default_factory=list)
    cover: Cover | None = None  # its cover, with its author's alt text (the `cover` filter)

    # The same rules as Post's, on the same columns.
    is_published = Post.is_published
    is_scheduled = Post.is_scheduled


def _shown_post(request: Request, slug: str) -> ShownPost | None:
    """Give the post with this slug as its page shows it (None: no post has it now)."""
    db = get_db(request)
    connection = db.connection()
    statement = _post_page_by_slug(connection.dialect.name)
    row = connection.execute(statement, {"slug": slug}).first()
    if row is None:
        return None
    links = listing.Links.current()
    count = len(_SHOWN_POST_COLUMNS)
    post = ShownPost(*row[:count])
    username, display_name, bio, picture_id = row[count : count + 4]
    author_url = links.author(username)
    post.author = ShownAuthor(post.author_id, username, display_name, bio, picture_id, author_url)
    in_series, mentions, reactions, approved, threads, tags = row[count + 4 :]
    request.context[("post_facts", post.id)] = PostFacts(
        bool(in_series), bool(mentions), bool(reactions), (approved or 0, threads or 0)
    )
    if isinstance(tags, str):  # SQLite's JSON is text; psycopg decodes PostgreSQL's
        tags = sorted(json.loads(tags), key=lambda tag: tag[1])
    post.tags = [
        ShownTag(tag_id, name, tag_slug, links.tag(tag_slug))
        for tag_id, name, tag_slug in tags or ()
    ]
    if post.cover_media_id is not None:  # a further query, only for a post with a cover
        post.cover = covers_of_posts(db, [post], current_app()).get(post.id)
    return post


def post_facts(request: Request, post: Post) -> PostFacts:
    """Give what get_post_or_404(..., with_facts=True) learnt of this post, or unknowns."""
    return request.context.get(("post_facts", post.id), UNKNOWN_FACTS)


NO_POST = "There is no post at this address."
REMOVED = "This post was removed by its author."


def get_post_or_404(
    request: Request,
    slug: str,
    *,
    check_author: bool = False,
    readers_only: bool = False,
) -> Post:
    """Give the post with this slug that the visitor may see (or edit, with check_author).

    An earlier slug of a post redirects (301) to the same page under its current slug;
    a post in the trash or purged from it is 410 Gone; a draft is 404 to all but its
    author and admins (and to everyone with `readers_only`, as in the public API).
    """
    if not is_valid_slug(slug):  # (from a form field): no post has such a slug
        raise NotFound(NO_POST)
    db = get_db(request)
    post = db.scalar(_POST_BY_SLUG, {"slug": slug})
    if post is not None and "tags" not in post.__dict__:
        # One keyed query: cheaper than the selectin loader's machinery for one post.
        set_committed_value(post, "tags", list(db.scalars(_TAGS_OF_POST, {"post_id": post.id})))
    user = None if readers_only else current_user(request)
    if post is None:
        answer_for_unused_slug(request, db, slug, user)
    refuse_unseen(post, user)
    if check_author and not can_edit(user, post):
        raise Forbidden("Only the post's author, an editor or an administrator can change it.")
    return post


def shown_post_or_404(request: Request, slug: str) -> ShownPost:
    """Give the post with this slug as its page shows it, to a visitor who may see it.

    The same answers as get_post_or_404 (a redirect from an earlier slug, 410, 404), and
    what the page's later parts would find (PostFacts, kept for post_facts()).
    """
    if not is_valid_slug(slug):
        raise NotFound(NO_POST)
    post = _shown_post(request, slug)
    user = current_user(request)
    if post is None:
        answer_for_unused_slug(request, get_db(request), slug, user)
    refuse_unseen(post, user)
    return post


def answer_for_unused_slug(request: Request, db: Session, slug: str, user: User | None) -> NoReturn:
    """Redirect to the post that had this slug before; else 410 if a post had it, or 404."""
    post_id = db.scalar(select(OldSlug.post_id).where(OldSlug.slug == slug))
    post = db.get(Post, post_id) if post_id is not None else None
    if post is not None and post.deleted_at is not None:
        raise Gone(REMOVED)
    if post is not None and (post.is_published or can_edit(user, post)):
        moved_to(request, "slug", post.slug)
    if db.scalar(select(GoneSlug.slug).where(GoneSlug.slug == slug)) is not None:
        raise Gone(REMOVED)
    raise NotFound(NO_POST)


def refuse_unseen(post: Post, user: User | None) -> None:
    """Refuse a post this visitor may not see: trashed (410, or 404 if never public), a draft.

    Its author learns that it is in the trash; readers, that it was removed, if they
    could ever have read it.
    """
    if post.deleted_at is not None:
        if can_edit(user, post):
            raise Gone("This post is in the trash. Restore it from the trash to change it.")
        if post.status == "published" and post.published_at and post.published_at <= utcnow():
            raise Gone(REMOVED)
        raise NotFound(NO_POST)
    if not post.is_published and not can_edit(user, post):
        raise NotFound(NO_POST)


def view_counter(post: Post) -> Callable[[dict[str, Any]], None]:
    """Give the function of a request's environ that counts a reader's view of a post.

    Only a GET counts: a HEAD or a revalidation reads nothing. The page cache calls it
    too, when it serves the kept page. The all-time count takes every GET; the day's
    statistics only browsers' first view in a while (pyproject.blog.stats).
    """
    return stats.page_counter(f"post:{post.id}", post_id=post.id, author_id=post.author_id)


_TAG_JUNK = re.compile(r"[^\w-]+")


def tag_slug(name: str) -> str:
    """Give the URL name of a tag: case-folded, spaces as hyphens, letters of any script."""
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    return _TAG_JUNK.sub("-", text.replace("_", "-")).strip("-")[:60]


# --- reading pages -----------------------------------------------------------------------


@reader_page(refresh_seconds=60)
def home(request: Request) -> Response:
    """The newest published posts, and the week's most read."""
    db = get_db(request)
    now, number = utcnow(), page_number(request)
    per_page = site_settings().posts_per_page
    ids, has_next = listing.page_ids(db, listing.NEWEST, {"now": now}, number, per_page)
    top = most_read_ids(db, now)
    # Pinned posts atop the first page (#17; series.py pins them).
    from pyproject.blog import series  # (it builds on this module)

    pinned_ids = series.pinned_ids(db) if number == 1 else []
    # One load for every list: the page's cards, the week's most read and the pinned.
    by_id = listing.cards_by_id(db, [*ids, *(post_id for post_id, _ in top), *pinned_ids])
    page = Page([by_id[post_id] for post_id in ids if post_id in by_id], number, has_next)
    popular = [(by_id[post_id], views) for post_id, views in top if post_id in by_id]
    pinned = [by_id[post_id] for post_id in pinned_ids if post_id in by_id]
    return stats.counted(
        request,
        render_template("posts/index.html", page=page, popular=popular, pinned=pinned),
        "home",
    )


@reader_page
def archive(request: Request) -> str:
    """Every published post, newest first, grouped by year and month with counts (#23)."""
    db, now = get_db(request), utcnow()
    page = card_page(db, listing.NEWEST, {"now": now}, page_number(request))
    zone = site_settings().zone
    years = group_by_month(page.items, month_counts(db, zone, now, page.items), zone)
    return render_template("posts/archive.html", page=page, years=years)


def post_page(request: Request, post: Post, **context: Any) -> str:
    """Render a post's page: what show_post serves, and what a refused comment shows again
    (with `comment_form`, comments.py)."""
    return render_template(
        "posts/show.html",
        post=post,
        can_edit=can_edit(current_user(request), post),
        facts=post_facts(request, post),
        end=post_end(get_db(request), post),  # what to read next, who wrote it (#23)
        **context,
    )


# Hourly fresh (a time bucket in the validators): the comment form's signed token holds
# the time the page was rendered, and must stay younger than its maximum age (comments.py).
@reader_page(refresh_seconds=3600)
def show_post(request: Request, slug: str) -> Response:
    """One post. Readers' views are counted (the author's own are not)."""
    post = shown_post_or_404(request, slug)
    if post.kind == "page":  # a page lives at /<slug> (#17)
        raise Redirect(url_for("show_page", slug=post.slug), 301)
    user = current_user(request)
    response = Response(post_page(request, post))
    if post.is_published and (user is None or user.id != post.author_id):
        count = view_counter(post)
        count(request.environ)
        # A kept copy of the page counts its readers too.
        response.shared = Shared(on_hit=count)
    return response


@login_required
def drafts(request: Request) -> str:
    """The author's dashboard: their posts with their state (admins see everyone's)."""
    db = get_db(request)
    user = current_user(request)
    query = (
        select(Post)
        .options(selectinload(Post.tags))
        .where(Post.deleted_at.is_(None))
        .order_by(Post.updated_at.desc(), Post.id.desc())
    )
    if not roles.is_editor(user):  # editors and admins see everyone's (#20)
        query = query.where(Post.author_id == user.id)
    page = paginate(db, query, page_number(request), per_page=25)
    # An administrator's dashboard says when jobs wait and no worker runs them.
    stalled = user.is_admin and jobs.queue_state(current_app(), db).stalled
    return render_template("posts/drafts.html", page=page, now=utcnow(), jobs_stalled=stalled)


def prune_unused_tags(db: Session, tag_ids: Iterable[int] | None = None) -> None:
    """Delete the tags no post carries any more, among `tag_ids` (all tags when None).

    Call it after a post lost tags (retagged, purged); the caller commits. It queues
    behind other post writes, so a save that is giving a post one of these tags
    right now keeps it.
    """
    if tag_ids is not None:
        tag_ids = sorted(set(tag_ids))
        if not tag_ids:
            return
    lock_post_writes(db)
    db.flush()  # the links as they are now: a purged post's are gone
    unused = delete(Tag).where(
        ~select(post_tags.c.tag_id).where(post_tags.c.tag_id == Tag.id).exists()
    )
    if tag_ids is not None:
        unused = unused.where(Tag.id.in_(tag_ids))
    db.execute(unused, execution_options={"synchronize_session": "fetch"})


def tag_counts(db: Session) -> list[Any]:
    """Give every tag with published posts as (name, slug, count) rows, most used first."""
    count = func.count(Post.id)
    return db.execute(
        select(Tag.name, Tag.slug, count.label("count"))
        .join(post_tags, post_tags.c.tag_id == Tag.id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(*visible(utcnow()), Post.kind == "post")
        .group_by(Tag.id, Tag.name, Tag.slug)
        .order_by(count.desc(), Tag.name)
    ).all()


@reader_page
def tags_index(request: Request) -> str:
    """Every tag with its number of published posts."""
    return render_template("tags/index.html", tags=tag_counts(get_db(request)))


def tag_or_404(request: Request, tag: str) -> Row[Any]:
    """Give the tag a URL names; another spelling of it (/tags/Python) redirects.

    A tag no visible post carries is 404, before any redirect: its name (even its
    canonical spelling) is still only its authors' to see.
    """
    params = {"slug": tag_slug(tag), "now": utcnow()}
    found = get_db(request).connection().execute(listing.TAG_BY_SLUG, params).first()
    if found is None:
        raise NotFound("There is no such tag.")
    if tag != found.slug:
        moved_to(request, "tag", found.slug)
    return found


def author_or_404(request: Request, username: str) -> User:
    """Give the author a URL names; another spelling of the name redirects."""
    author = get_db(request).scalar(select(User).where(User.username == username.lower()))
    if author is None:
        raise NotFound("There is no such author.")
    if username != author.username:
        moved_to(request, "username", author.username)
    return author


def tagged(tag: Tag) -> Any:
    """Give the condition for posts that carry `tag`."""
    # EXISTS, not IN: SQLite then walks the newest posts and stops at a page's worth.
    return (
        select(post_tags.c.post_id)
        .where(post_tags.c.post_id == Post.id, post_tags.c.tag_id == tag.id)
        .exists()
    )


@reader_page
def show_tag(request: Request, tag: str) -> Response:
    """A tag's published posts."""
    found = tag_or_404(request, tag)
    params = {"now": utcnow(), "tag_id": found.id}
    page = card_page(get_db(request), listing.BY_TAG, params, page_number(request))
    body = render_template("tags/show.html", tag=found, page=page)
    return stats.counted(request, body, f"tag:{found.slug}")


@reader_page
def show_author(request: Request, username: str) -> str:
    """An author's bio and published posts."""
    db = get_db(request)
    author = author_or_404(request, username)
    params = {"now": utcnow(), "author_id": author.id}
    page = card_page(db, listing.BY_AUTHOR, params, page_number(request))
    return render_template("authors/show.html", author=author, page=page)


def register(app: App) -> None:
    """Add the reading pages' routes to the app."""
    app.add_route("/", home)
    app.add_route("/posts", archive)
    app.add_route("/posts/<slug:slug>", show_post)
    app.add_route("/drafts", drafts)
    app.add_route("/tags", tags_index)
    app.add_route("/tags/<tag>", show_tag)
    app.add_route("/authors/<username>", show_author)
