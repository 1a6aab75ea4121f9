"""Posts: reading pages, the editor (create, edit, preview, delete), drafts, tags, authors."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from pyproject.auth import current_user, login_required
from pyproject.db import get_database, get_db
from pyproject.errors import Forbidden, NotFound
from pyproject.forms import Form
from pyproject.lib import (
    App,
    Request,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from pyproject.markup import Rendered, render_markdown
from pyproject.models import Post, Tag, User, post_tags, utcnow
from pyproject.slugs import is_valid_slug, slugify

PER_PAGE = 10
TITLE_MAX, BODY_MAX, SUMMARY_MAX = 200, 200_000, 300
TAG_MAX, TAGS_MAX = 40, 10
POPULAR_DAYS, POPULAR_COUNT = 7, 5
POST_FIELDS = ("title", "body", "summary", "tags", "slug", "status")


# --- queries -----------------------------------------------------------------------------


def published(query: Select, now: datetime) -> Select:
    """Limit a query to posts readers may see: published, and not scheduled for later."""
    return query.where(Post.status == "published", Post.published_at <= now)


def page_number(request: Request) -> int:
    """Give ?page=N as a positive int; anything else is a 404 (one URL per page)."""
    raw = request.args.get("page")
    if raw is None:
        return 1
    if not raw.isdigit() or raw.startswith("0") or len(raw) > 6:
        raise NotFound("There is no such page.")
    return int(raw)


@dataclass
class Page:
    """One page of a list: its items and where the neighbours are."""

    items: list[Any]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def paginate(db: Session, query: Select, number: int, per_page: int = PER_PAGE) -> Page:
    """Give page `number` of `query`; a page past the end (but the first) is a 404."""
    rows = db.scalars(query.limit(per_page + 1).offset((number - 1) * per_page)).unique().all()
    if not rows and number > 1:
        raise NotFound("There is no such page.")
    return Page(list(rows[:per_page]), number, len(rows) > per_page)


def post_list_query() -> Select:
    """Give the select for post lists: newest first, tags loaded for the whole page at once."""
    return (
        select(Post)
        .options(selectinload(Post.tags))
        .order_by(Post.published_at.desc(), Post.id.desc())
    )


def popular_posts(db: Session, now: datetime) -> list[Post]:
    """Give the most-read posts published in the last week."""
    query = published(
        select(Post).where(Post.published_at >= now - timedelta(days=POPULAR_DAYS)), now
    )
    return list(
        db.scalars(query.order_by(Post.view_count.desc(), Post.id.desc()).limit(POPULAR_COUNT))
    )


def can_edit(user: User | None, post: Post) -> bool:
    return user is not None and (user.is_admin or user.id == post.author_id)


def get_post_or_404(request: Request, slug: str, *, check_author: bool = False) -> Post:
    """Give the post with this slug that the visitor may see (or edit, with check_author)."""
    db = get_db(request)
    post = db.scalar(select(Post).options(selectinload(Post.tags)).where(Post.slug == slug))
    user = current_user(request)
    if post is None:
        raise NotFound("There is no post at this address.")
    visible = post.status == "published" and post.published_at <= utcnow()
    if not visible and not can_edit(user, post):
        raise NotFound("There is no post at this address.")
    if check_author and not can_edit(user, post):
        raise Forbidden("Only the post's author or an administrator can change it.")
    return post


def count_view(request: Request, post_id: int) -> None:
    """Add one to a post's view count, in SQL so concurrent views are never lost."""
    with get_database(current_app()).write() as db:
        db.execute(update(Post).where(Post.id == post_id).values(view_count=Post.view_count + 1))


# --- tags --------------------------------------------------------------------------------

_TAG_JUNK = re.compile(r"[^\w-]+")


def tag_slug(name: str) -> str:
    """Give the URL name of a tag: case-folded, spaces as hyphens, letters of any script."""
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    return _TAG_JUNK.sub("-", text.replace("_", "-")).strip("-")[:60]


def parse_tags(form: Form) -> list[tuple[str, str]]:
    """Give the (name, slug) pairs of the comma-separated tags field (errors on the form)."""
    raw = form.text("tags", label="Tags", max_length=1000)
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in raw.split(","):
        name = " ".join(part.split())
        if not name:
            continue
        if len(name) > TAG_MAX:
            form.error(
                "tags", f"Each tag may be at most {TAG_MAX} characters: “{name[:50]}” is too long."
            )
            continue
        slug = tag_slug(name)
        if not slug:
            form.error("tags", f"The tag “{name}” needs at least one letter or digit.")
            continue
        if slug not in seen:
            seen.add(slug)
            tags.append((name, slug))
    if len(tags) > TAGS_MAX:
        form.error("tags", f"Use at most {TAGS_MAX} tags (you have {len(tags)}).")
    return tags


def resolve_tags(db: Session, pairs: list[tuple[str, str]]) -> list[Tag]:
    """Give Tag rows for (name, slug) pairs, creating the ones that do not exist yet."""
    if not pairs:
        return []
    existing = {
        t.slug: t for t in db.scalars(select(Tag).where(Tag.slug.in_([s for _, s in pairs])))
    }
    tags = []
    for name, slug in pairs:
        tag = existing.get(slug)
        if tag is None:
            tag = Tag(name=name, slug=slug)
            db.add(tag)
            existing[slug] = tag
        tags.append(tag)
    return tags


# --- the editor ------------------------------------------------------------------------


@dataclass
class PostInput:
    title: str
    body: str
    summary: str
    tags: list[tuple[str, str]]
    slug: str
    status: str


def validate_post(form: Form) -> PostInput:
    """Give the cleaned fields of the post form, recording each error beside its field."""
    title = form.text("title", label="Title", required=True, max_length=TITLE_MAX)
    body = form.text("body", label="Body", required=True, max_length=BODY_MAX, strip=False)
    if body and not body.strip():
        form.error("body", "Body is required.")
    summary = form.text("summary", label="Summary", max_length=SUMMARY_MAX)
    tags = parse_tags(form)
    slug = form.text("slug", label="Slug", max_length=200).lower()
    if slug and not is_valid_slug(slug):
        form.error("slug", "Use lower-case letters, digits and single hyphens, like my-first-post.")
    status = form.get("status") or "draft"
    if status not in ("draft", "published"):
        form.error("status", "Choose draft or published.")
    return PostInput(title, body, summary, tags, slug, status)


def unique_slug(db: Session, base: str, exclude_id: int | None = None) -> str:
    """Give `base`, or base-2, base-3… whichever is free."""
    query = select(Post.slug).where((Post.slug == base) | Post.slug.like(f"{base}-%"))
    if exclude_id is not None:
        query = query.where(Post.id != exclude_id)
    taken = set(db.scalars(query))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def apply_input(db: Session, post: Post, data: PostInput, rendered: Rendered) -> None:
    """Copy validated input and its rendering onto a post."""
    now = utcnow()
    post.title = data.title
    post.body_md = data.body
    post.body_html = rendered.html
    post.toc_html = rendered.toc_html
    post.render_version = rendered.version
    post.word_count = rendered.word_count
    post.reading_minutes = rendered.reading_minutes
    post.summary_is_custom = bool(data.summary)
    post.summary = data.summary or rendered.summary
    post.tags = resolve_tags(db, data.tags)
    if data.status == "published" and post.published_at is None:
        post.published_at = now
    post.status = data.status
    post.updated_at = now


def editor_page(
    request: Request,
    form: Form,
    post: Post | None,
    status: int = 200,
    preview_html: str | None = None,
) -> tuple[str, int]:
    return render_template(
        "posts/edit.html", form=form, post=post, preview_html=preview_html
    ), status


def save_post(request: Request, post: Post | None) -> Any:
    """Validate the form and create or update the post; on errors, show the form again."""
    form = Form(request.form, POST_FIELDS)
    data = validate_post(form)
    db = get_db(request)
    if data.slug and form.ok:
        clash = db.scalar(select(Post.id).where(Post.slug == data.slug))
        if clash is not None and (post is None or clash != post.id):
            form.error("slug", "Another post already uses this slug. Choose another one.")
    if not form.ok:
        return editor_page(request, form, post, 422)
    rendered = render_markdown(data.body)
    creating = post is None
    if creating:
        post = Post(author_id=current_user(request).id, view_count=0)
        db.add(post)
    for attempt in range(5):
        if data.slug:
            post.slug = data.slug
        elif creating or not post.slug:
            post.slug = unique_slug(db, slugify(data.title) or "post")
        apply_input(db, post, data, rendered)
        try:
            db.commit()
            break
        except IntegrityError:
            # Another writer took the slug between our check and our commit (PostgreSQL;
            # SQLite's write lock makes this rare): pick again, or tell the author.
            db.rollback()
            if data.slug or attempt == 4:
                form.error("slug", "Another post already uses this slug. Choose another one.")
                return editor_page(request, form, None if creating else post, 422)
            if creating:
                post = Post(author_id=current_user(request).id, view_count=0)
                db.add(post)
            else:
                post = db.get(Post, post.id)
    flash("Post published." if post.status == "published" else "Draft saved.", "success")
    return redirect(url_for("show_post", slug=post.slug))


@login_required
def new_post(request: Request) -> Any:
    """The editor for a new post."""
    form = Form({"status": "draft"}, POST_FIELDS)
    return editor_page(request, form, None)


@login_required
def create_post(request: Request) -> Any:
    return save_post(request, None)


def post_form_values(post: Post) -> dict[str, str]:
    return {
        "title": post.title,
        "body": post.body_md,
        "summary": post.summary if post.summary_is_custom else "",
        "tags": ", ".join(t.name for t in post.tags),
        "slug": post.slug,
        "status": post.status,
    }


@login_required
def edit_post(request: Request, slug: str) -> Any:
    """The editor for an existing post, and saving it."""
    post = get_post_or_404(request, slug, check_author=True)
    if request.method == "POST":
        return save_post(request, post)
    return editor_page(request, Form(post_form_values(post), POST_FIELDS), post)


@login_required
def delete_post(request: Request, slug: str) -> Response:
    """Delete a post (the page asks for confirmation first when script runs)."""
    post = get_post_or_404(request, slug, check_author=True)
    db = get_db(request)
    db.delete(post)
    db.commit()
    flash(f"“{post.title}” was deleted.", "success")
    return redirect(url_for("drafts"))


@login_required
def preview_post(request: Request) -> Any:
    """Render Markdown with the same pipeline: a fragment for script, else the whole form."""
    body = request.form.get("body", "")
    if len(body) > BODY_MAX:
        body = body[:BODY_MAX]
    html = render_markdown(body).html
    if request.headers.get("X-Requested-With") == "fetch":
        return Response(html, 200)
    form = Form(request.form, POST_FIELDS)
    editing = request.form.get("editing", "")
    post = get_post_or_404(request, editing, check_author=True) if editing else None
    return editor_page(request, form, post, 200, preview_html=html)


# --- reading pages -----------------------------------------------------------------------


def home(request: Request) -> str:
    """The newest published posts, and the week's most read."""
    db = get_db(request)
    now = utcnow()
    page = paginate(db, published(post_list_query(), now), page_number(request))
    return render_template(
        "posts/index.html", page=page, popular=popular_posts(db, now), endpoint="home"
    )


def archive(request: Request) -> str:
    """Every published post, newest first."""
    db = get_db(request)
    page = paginate(db, published(post_list_query(), utcnow()), page_number(request))
    return render_template("posts/archive.html", page=page, endpoint="archive")


def show_post(request: Request, slug: str) -> Any:
    """One post."""
    post = get_post_or_404(request, slug)
    user = current_user(request)
    if post.is_published and (user is None or user.id != post.author_id):
        count_view(request, post.id)
    return render_template("posts/show.html", post=post, can_edit=can_edit(user, post))


@login_required
def drafts(request: Request) -> str:
    """The signed-in author's posts with their state (admins see everyone's)."""
    db = get_db(request)
    user = current_user(request)
    query = (
        select(Post)
        .options(selectinload(Post.tags))
        .order_by(Post.updated_at.desc(), Post.id.desc())
    )
    if not user.is_admin:
        query = query.where(Post.author_id == user.id)
    page = paginate(db, query, page_number(request), per_page=25)
    return render_template("posts/drafts.html", page=page, now=utcnow())


def tags_index(request: Request) -> str:
    """Every tag with its number of published posts."""
    db = get_db(request)
    now = utcnow()
    count = func.count(Post.id)
    rows = db.execute(
        select(Tag.name, Tag.slug, count.label("count"))
        .join(post_tags, post_tags.c.tag_id == Tag.id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(Post.status == "published", Post.published_at <= now)
        .group_by(Tag.id, Tag.name, Tag.slug)
        .order_by(count.desc(), Tag.name)
    ).all()
    return render_template("tags/index.html", tags=rows)


def show_tag(request: Request, tag: str) -> str:
    """A tag's published posts."""
    db = get_db(request)
    found = db.scalar(select(Tag).where(Tag.slug == tag))
    if found is None:
        raise NotFound("There is no such tag.")
    query = published(post_list_query(), utcnow()).where(
        Post.id.in_(select(post_tags.c.post_id).where(post_tags.c.tag_id == found.id))
    )
    page = paginate(db, query, page_number(request))
    return render_template("tags/show.html", tag=found, page=page)


def show_author(request: Request, username: str) -> str:
    """An author's bio and published posts."""
    db = get_db(request)
    author = db.scalar(select(User).where(User.username == username.lower()))
    if author is None:
        raise NotFound("There is no such author.")
    query = published(post_list_query(), utcnow()).where(Post.author_id == author.id)
    page = paginate(db, query, page_number(request))
    return render_template("authors/show.html", author=author, page=page)


def register(app: App) -> None:
    """Add the posts' routes to the app."""
    app.add_route("/", home)
    app.add_route("/posts", archive)
    app.add_route("/posts", create_post, methods=["POST"])
    app.add_route("/posts/new", new_post)
    app.add_route("/posts/preview", preview_post, methods=["POST"])
    app.add_route("/posts/<slug:slug>", show_post)
    app.add_route("/posts/<slug:slug>/edit", edit_post, methods=["GET", "POST"])
    app.add_route("/posts/<slug:slug>/delete", delete_post, methods=["POST"])
    app.add_route("/drafts", drafts)
    app.add_route("/tags", tags_index)
    app.add_route("/tags/<tag>", show_tag)
    app.add_route("/authors/<username>", show_author)
