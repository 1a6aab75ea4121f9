"""Writing: create, edit, preview and autosave posts; every save keeps a revision.

Nothing an author types is lost: a form with errors comes back as typed (422), a save
that started from an older revision than the current one is refused with a 409 page
that shows both texts and keeps the author's, and autosaves land in revisions without
touching the published text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from pyproject.blog import cover, pages, review, webmention
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.db import begin_write, end_transaction, get_db
from pyproject.blog.diffing import word_diff
from pyproject.blog.forms import Form
from pyproject.blog.markup import Rendered, RenderRefused, placeholder_links
from pyproject.blog.models import GoneSlug, OldSlug, Post, Revision, Tag, User, post_tags, utcnow
from pyproject.blog.posts import get_post_or_404, prune_unused_tags, tag_slug
from pyproject.blog.rendering import RenderTimeout, render_post
from pyproject.blog.slugs import is_valid_slug, slugify
from pyproject.blog.subscriptions import announce_when_public
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
from pyproject.lib.exceptions import UnprocessableEntity
from pyproject.lib.response import json_response

TITLE_MAX, BODY_MAX, SUMMARY_MAX = 200, 200_000, 300
TAG_MAX, TAGS_MAX = 40, 10
POST_FIELDS = (
    *("title", "body", "summary", "tags", "slug", "status", "publish_at", "base_revision"),
    "cover",
    "kind",  # post or page (#17): set when created, kept after
)
POST_FIELDS = (*POST_FIELDS, "toc_mode", "editor_font")  # #23 writing desk
TOC_MODES = ("auto", "off")  # #23: an automatic table of contents, or none unless [TOC]
EDITOR_FONTS = ("sans", "mono")
NOTE_TITLE_WORDS = 8  # an untitled note's slug and list entry: its first words
# Paths under /posts/ that are pages, not posts.
RESERVED_SLUGS = frozenset({"new", "preview", "autosave"})
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


# --- validation --------------------------------------------------------------------------


@dataclass
class PostInput:
    title: str
    body: str
    summary: str
    tags: list[tuple[str, str]]
    slug: str
    status: str
    publish_at: datetime | None
    cover_id: int | None = None  # a picture of the author's library (cover.py)
    kind: str = "post"  # or "page": shown at /<slug>, not in lists (pages.py, #17)
    toc_mode: str | None = None  # None: leave the post's as it is (#23)


def site_zone() -> Any:
    from pyproject.blog.settings import site_settings  # (it builds on this module's users)

    return site_settings(current_app()).zone


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


def parse_local_time(value: str) -> datetime | None:
    """Give the UTC time for a datetime-local value in the site's time zone, or None."""
    for fmt in (LOCAL_INPUT_FORMAT, LOCAL_INPUT_FORMAT + ":%S"):
        try:
            naive = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=site_zone()).astimezone(UTC)
    return None


def local_input_value(value: datetime | None) -> str:
    """Give a UTC time as a datetime-local value in the site's time zone."""
    return value.astimezone(site_zone()).strftime(LOCAL_INPUT_FORMAT) if value else ""


def validate_post(form: Form, *, draft: bool = False) -> PostInput:
    """Give the cleaned fields of the post form, recording each error beside its field.

    A `draft` (an autosave) may still lack its title and body; every other rule holds.
    """
    # A short note may be untitled (#23): its first words name it.
    title = form.text("title", label="Title", max_length=TITLE_MAX)
    body = form.text("body", label="Body", required=not draft, max_length=BODY_MAX, strip=False)
    if body and not body.strip() and not draft:
        form.error("body", "Body is required.")
    if body and not draft:
        placeholders = placeholder_links(body)
        if placeholders:
            named = ", ".join(f"“{url}”" for url in placeholders)
            form.error(
                "body",
                f"A link still has a placeholder address ({named}): put the real address"
                " in, or remove the link.",
            )
    summary = form.text("summary", label="Summary", max_length=SUMMARY_MAX)
    tags = parse_tags(form)
    slug = form.text("slug", label="Slug", max_length=200).lower()
    if slug and not is_valid_slug(slug):
        form.error("slug", "Use lower-case letters, digits and single hyphens, like my-first-post.")
    elif slug in RESERVED_SLUGS:
        form.error("slug", f"“{slug}” is the name of a page on this site. Choose another slug.")
    status = form.get("status") or "draft"
    if status not in ("draft", "published"):
        form.error("status", "Choose draft or published.")
    publish_raw = form.text("publish_at", label="Publish at", max_length=40)
    publish_at = None
    if publish_raw:
        publish_at = parse_local_time(publish_raw)
        if publish_at is None:
            form.error("publish_at", "Enter a date and time like 2026-12-24T09:00.")
    cover_id = cover.read_choice(form)
    toc_mode = form.get("toc_mode") or None
    if toc_mode is not None and toc_mode not in TOC_MODES:
        form.error("toc_mode", "Choose an automatic table of contents or none.")
        toc_mode = None
    kind = form.get("kind") or "post"
    if kind not in pages.KINDS:
        form.error("kind", "Choose a post or a page.")
    elif kind == "page" and slug and "slug" not in form.errors and pages.route_clash(slug):
        form.error("slug", pages.route_clash(slug))
    return PostInput(
        title, body, summary, tags, slug, status, publish_at, cover_id, kind, toc_mode=toc_mode
    )


def note_title(body: str, words: int = NOTE_TITLE_WORDS) -> str:
    """Give the first words of a note's Markdown, as plain text (its name when untitled)."""
    from pyproject.blog.markup import plain_text_summary, render_markdown

    try:
        text = plain_text_summary(render_markdown(body[:2000]).html)
    except RenderRefused:
        text = body[:2000]
    first = " ".join(text.replace("…", " ").split()[:words])
    return first[:TITLE_MAX]


def render_body(form: Form, body: str) -> Rendered | None:
    """Give the rendering of the form's body, or None with the reason beside the field.

    Call it with no transaction open: a render may take up to the time limit.
    """
    try:
        return render_post(body)
    except RenderRefused as refused:
        form.error("body", f"{refused.message} Your text is kept below; nothing was saved.")
    except RenderTimeout as timeout:
        form.error(
            "body",
            f"{timeout} Your text is kept below; nothing was saved. Long code listings, very"
            " many links or deeply nested lists are the usual cause.",
        )
    return None


# --- slugs -------------------------------------------------------------------------------


def slug_problem(db: Session, slug: str, post_id: int | None) -> str | None:
    """Give why `slug` cannot be this post's, or None if it is free for it."""
    if slug in RESERVED_SLUGS:
        return f"“{slug}” is the name of a page on this site. Choose another slug."
    owner = db.scalar(select(Post.id).where(Post.slug == slug))
    if owner is not None and owner != post_id:
        return "Another post already uses this slug. Choose another one."
    old_owner = db.scalar(select(OldSlug.post_id).where(OldSlug.slug == slug))
    if old_owner is not None and old_owner != post_id:
        return "This slug was used by another post and still leads to it. Choose another one."
    return None


def unique_slug(db: Session, base: str, post_id: int | None = None) -> str:
    """Give `base`, or base-2, base-3…, whichever no other post has or had."""
    pattern = (Post.slug == base) | Post.slug.like(f"{base}-%")
    taken = set(db.scalars(select(Post.slug).where(pattern, Post.id != (post_id or -1))))
    taken |= set(
        db.scalars(
            select(OldSlug.slug).where(
                (OldSlug.slug == base) | OldSlug.slug.like(f"{base}-%"),
                OldSlug.post_id != (post_id or -1),
            )
        )
    )
    taken |= RESERVED_SLUGS
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def change_slug(db: Session, post: Post, new_slug: str) -> None:
    """Give the post a new slug; a slug readers may have seen keeps answering with a 301."""
    if new_slug == post.slug:
        return
    if post.slug and post.published_at is not None:
        db.add(OldSlug(slug=post.slug, post_id=post.id))
    db.execute(delete(OldSlug).where(OldSlug.slug == new_slug, OldSlug.post_id == post.id))
    db.execute(delete(GoneSlug).where(GoneSlug.slug == new_slug))
    post.slug = new_slug


# --- revisions ---------------------------------------------------------------------------


def next_revision_number(db: Session, post_id: int) -> int:
    return (
        db.scalar(select(func.max(Revision.number)).where(Revision.post_id == post_id)) or 0
    ) + 1


def tags_text(tags: list[Tag] | list[tuple[str, str]]) -> str:
    return ", ".join(t.name if isinstance(t, Tag) else t[0] for t in tags)


def own_summary(post: Post) -> str:
    """Give the summary the author wrote for the post, or "" if it is the rendered one."""
    return post.summary if post.summary_is_custom else ""


def add_revision(
    db: Session,
    post: Post,
    kind: str,
    user: User,
    previous_body: str,
    *,
    content: PostInput | None = None,
) -> Revision:
    """Add a revision of the post holding `content` (default: the post's own; caller commits).

    Its "words changed" count is taken against `previous_body`. Any kind but an autosave
    holds the post's text, so it becomes the post's current revision.
    """
    if content is None:
        title, body, summary, tags = post.title, post.body_md, own_summary(post), post.tags
    else:
        title, body, summary, tags = content.title, content.body, content.summary, content.tags
    revision = Revision(
        post_id=post.id,
        number=next_revision_number(db, post.id),
        kind=kind,
        title=title,
        body_md=body,
        summary=summary,
        tags=tags_text(tags),
        author_id=user.id,
        words_changed=word_diff(previous_body, body).words_changed,
        created_at=utcnow(),
    )
    db.add(revision)
    if kind != "autosave":
        post.revision = revision.number
    return revision


def set_tags(
    db: Session, post: Post, pairs: list[tuple[str, str]], *, public: bool = False
) -> None:
    """Give a post these tags (by (name, slug)), creating tags that do not exist yet.

    A tag the post leaves that no other post carries is removed. For a `public` post
    (published or scheduled), a tag that no other such post carries takes the spelling
    typed here, so a name only an author has seen never reaches readers.
    """
    before = {tag.id for tag in post.tags if tag.id is not None}
    tags: list[Tag] = []
    if pairs:
        slugs = [slug for _, slug in pairs]
        existing = {t.slug: t for t in db.scalars(select(Tag).where(Tag.slug.in_(slugs)))}
        for name, slug in pairs:
            tag = existing.get(slug)
            if tag is None:
                tag = existing[slug] = Tag(name=name, slug=slug)
                db.add(tag)
            elif public and tag.name != name and not carried_by_other_public_post(db, tag, post):
                tag.name = name  # readers see the spelling a public post typed, never a draft's
            tags.append(tag)
    post.tags = tags
    post.tag_names = " ".join(tag.name for tag in tags)
    prune_unused_tags(db, before - {tag.id for tag in tags})


def carried_by_other_public_post(db: Session, tag: Tag, post: Post) -> bool:
    """Give whether a published post other than `post` carries the tag (trash aside)."""
    query = (
        select(post_tags.c.post_id)
        .join(Post, Post.id == post_tags.c.post_id)
        .where(
            post_tags.c.tag_id == tag.id,
            Post.id != (post.id or -1),
            Post.status == "published",
            Post.deleted_at.is_(None),
        )
    )
    return db.scalar(query.exists().select()) or False


def render_onto(post: Post, body: str, rendered: Rendered, summary: str) -> None:
    """Copy Markdown and its rendering onto a post."""
    post.body_md = body
    post.body_html = rendered.html
    post.toc_html = rendered.toc_html
    post.render_version = rendered.version
    post.word_count = rendered.word_count
    post.reading_minutes = rendered.reading_minutes
    post.summary_is_custom = bool(summary)
    post.summary = summary or rendered.summary


def apply_input(db: Session, post: Post, data: PostInput, rendered: Rendered) -> None:
    """Copy validated input and its rendering onto a post."""
    now = utcnow()
    post.title = data.title
    render_onto(post, data.body, rendered, data.summary)
    set_tags(db, post, data.tags, public=data.status == "published")
    if data.toc_mode is not None:
        post.toc_mode = data.toc_mode
    if data.publish_at is not None:
        post.published_at = data.publish_at
    elif data.status == "published" and (post.published_at is None or post.published_at > now):
        # Published with no time given: now (also when it was scheduled for later).
        post.published_at = now
    post.status = data.status
    post.updated_at = now
    post.cover_media_id = data.cover_id


# --- pages -------------------------------------------------------------------------------


# Built once (compiled once): the editor asks both on every open (#13).
_OLD_SLUGS = select(OldSlug.slug).where(OldSlug.post_id == bindparam("post_id"))
_LATEST_AUTOSAVE = (
    select(Revision)
    .where(
        Revision.post_id == bindparam("post_id"),
        Revision.kind == "autosave",
        Revision.author_id == bindparam("author_id"),
    )
    .order_by(Revision.number.desc())
    .limit(1)
)


def editor_page(
    request: Request,
    form: Form,
    post: Post | None,
    status: int = 200,
    *,
    preview_html: str | None = None,
    autosave: Revision | None = None,
) -> tuple[str, int]:
    old_slugs: list[str] = []
    if post is not None and post.id is not None:
        db = get_db(request)
        old_slugs = list(db.connection().execute(_OLD_SLUGS, {"post_id": post.id}).scalars())
    return render_template(
        "posts/edit.html",
        form=form,
        post=post,
        preview_html=preview_html,
        autosave=autosave,
        # The one recovery banner shows what the autosave would change (#23).
        autosave_diff=word_diff(post.body_md, autosave.body_md) if autosave else None,
        old_slugs=old_slugs,
        cover_choices=cover.choices_for(get_db(request), cover_owner(request, post).id),
    ), status


def cover_owner(request: Request, post: Post | None) -> User:
    """Give whose library a post's cover comes from: its author's (yours for a new post)."""
    return post.author if post is not None and post.id is not None else current_user(request)


def form_from_post(post: Post) -> Form:
    """Give the edit form filled with a post's current content."""
    values = {
        "title": post.title,
        "body": post.body_md,
        "summary": own_summary(post),
        "tags": tags_text(post.tags),
        "slug": post.slug,
        "status": post.status,
        "publish_at": local_input_value(post.published_at) if post.is_scheduled else "",
        "base_revision": str(post.revision),
        "cover": str(post.cover_media_id or ""),
        "kind": post.kind,
        "toc_mode": post.toc_mode,
        "editor_font": post.author.editor_font if post.author else "sans",
    }
    return Form(values, POST_FIELDS)


def latest_autosave(db: Session, post: Post, user: User) -> Revision | None:
    """Give this author's autosave of the post if it is newer than the last save."""
    autosave = db.scalar(_LATEST_AUTOSAVE, {"post_id": post.id, "author_id": user.id})
    if autosave is None or autosave.created_at <= post.updated_at:
        return None
    return autosave


def conflict_page(request: Request, post: Post, form: Form) -> tuple[str, int]:
    """The 409 page: the post changed since the author opened it; show both, keep theirs."""
    theirs = form.get("body")
    diff = word_diff(post.body_md, theirs)
    form.values["base_revision"] = str(post.revision)
    return render_template(
        "posts/conflict.html",
        post=post,
        form=form,
        diff=diff,
        title_changed=post.title != form.get("title"),
    ), 409


def save_post(request: Request, post: Post | None) -> Any:
    """Validate the form and create or update the post, keeping a revision of it.

    The Markdown is rendered before the write transaction begins, so a slow render holds
    no lock; the transaction then only checks the revision the author started from and
    writes.
    """
    form = Form(request.form, POST_FIELDS)
    data = validate_post(form)
    db = get_db(request)
    user = current_user(request)
    end_transaction(db)
    rendered = render_body(form, data.body) if form.ok else None
    begin_write(db)
    if post is not None:
        # Hold the post's row until commit (PostgreSQL: readers' view counts still pass),
        # then compare with the revision as it is now, not as loaded.
        db.execute(select(Post.id).where(Post.id == post.id).with_for_update(key_share=True))
        db.refresh(post)
        if not is_current(form, post):
            return conflict_page(request, post, form)
    if "cover" not in request.form and post is not None:
        # A form without the field (a page from before covers) leaves the cover as it is.
        data.cover_id = post.cover_media_id
        form.values["cover"] = str(post.cover_media_id or "")
    cover.check_choice(db, form, data.cover_id, cover_owner(request, post))
    remember_editor_font(form, user)
    if data.slug and form.ok:
        problem = slug_problem(db, data.slug, post.id if post else None)
        if problem:
            form.error("slug", problem)
    if not form.ok or rendered is None:
        return editor_page(request, form, post, 422)
    return write_post(request, form, post, data, rendered, user)


def is_current(form: Form, post: Post) -> bool:
    """Give whether the form was started from the post's current revision."""
    base = form.get("base_revision")
    return base.isascii() and base.isdigit() and int(base) == post.revision


def write_post(
    request: Request, form: Form, post: Post | None, data: PostInput, rendered: Rendered, user: User
) -> Any:
    """Write a validated, rendered post and its revision; then say so and show it."""
    db = get_db(request)
    creating = post is None
    try:
        post = store_post(db, post, data, rendered, user)
        db.commit()
    except StaleDataError:
        # Another worker saved this post between our check and our write.
        db.rollback()
        return conflict_page(request, db.get(Post, post.id), form)
    except IntegrityError:
        db.rollback()
        current = None if creating else db.get(Post, post.id)
        if current is not None and str(current.revision) != form.get("base_revision"):
            return conflict_page(request, current, form)
        form.error("slug", "Another post took this slug a moment ago. Choose another one.")
        return editor_page(request, form, current, 422)
    flash_saved(post)
    return redirect(pages.url_of(post))


def store_post(
    db: Session, post: Post | None, data: PostInput, rendered: Rendered, user: User
) -> Post:
    """Write a validated, rendered post (a new one for None) and its revision; give it.

    The one save path of the editor, the write API and Micropub (caller commits; the
    flush or commit may raise StaleDataError or IntegrityError for a race lost).
    """
    creating = post is None
    previous_body = "" if creating else post.body_md
    asked_review = review.hold_for_review(user, data)  # contributors never publish (#20)
    if creating:
        post = Post(author_id=user.id, revision=0, slug="", kind=data.kind)
    slug = choose_slug(db, post, data, creating)
    apply_input(db, post, data, rendered)
    if creating:
        post.slug = slug
        db.add(post)
        db.flush()
    else:
        change_slug(db, post, slug)
    add_revision(db, post, "save", user, previous_body)
    review.after_save(db, post, user, asked_review)
    announce_when_public(db, post)  # subscribers get it once this commits (#14)
    webmention.send_when_public(db, post)  # the sites it links to are told (#18)
    return post


def choose_slug(db: Session, post: Post, data: PostInput, creating: bool) -> str:
    """Give the slug the post will have: the one typed, a new one for drafts, else its own."""
    if data.slug:
        return data.slug
    if creating or (post.published_at is None and post.status == "draft"):
        base = slugify(data.title or note_title(data.body)) or post.kind
        if post.kind == "page" and pages.route_clash(base):  # "Tags" -> tags-page
            base = f"{base}-page"
        return unique_slug(db, base, post.id)
    return post.slug


def flash_saved(post: Post) -> None:
    """Tell the author what their save did: published, scheduled or kept as a draft."""
    if post.is_scheduled:
        local = post.published_at.astimezone(site_zone()).strftime("%-d %B %Y at %H:%M")
        flash(f"Scheduled: it will be published on {local}.", "success")
    else:
        flash("Post published." if post.status == "published" else "Draft saved.", "success")


@login_required
def new_post(request: Request) -> Any:
    """The editor for a new post."""
    font = current_user(request).editor_font
    return editor_page(request, Form({"status": "draft", "editor_font": font}, POST_FIELDS), None)


def remember_editor_font(form: Form, user: User) -> None:
    """Keep the editor font the author chose (#23) as theirs; other values are ignored."""
    font = form.get("editor_font")
    if font in EDITOR_FONTS and user.editor_font != font:
        user.editor_font = font


@login_required
def create_post(request: Request) -> Any:
    return save_post(request, None)


@login_required
def edit_post(request: Request, slug: str) -> Any:
    """The editor for an existing post (offering a newer autosave), and saving it."""
    post = get_post_or_404(request, slug, check_author=True)
    if request.method == "POST":
        return save_post(request, post)
    autosave = latest_autosave(get_db(request), post, current_user(request))
    form = form_from_post(post)
    if autosave is not None and request.args.get("autosave") == str(autosave.number):
        form.values.update(
            title=autosave.title,
            body=autosave.body_md,
            summary=autosave.summary,
            tags=autosave.tags,
        )
        flash(f"Restored your unsaved changes from {autosave_time(autosave)}. Save to keep them.")
        autosave = None
    return editor_page(request, form, post, autosave=autosave)


def autosave_time(revision: Revision) -> str:
    return revision.created_at.astimezone(site_zone()).strftime("%H:%M")


@login_required
def delete_post(request: Request, slug: str) -> Response:
    """Move a post to the trash (the page asks first when script runs)."""
    post = get_post_or_404(request, slug, check_author=True)
    db = get_db(request)
    post.deleted_at = utcnow()
    db.commit()
    flash(f"“{post.title}” is in the trash. You can restore it from there.", "success")
    return redirect(url_for("trash"))


@login_required
def preview_post(request: Request) -> Any:
    """Render Markdown with the same pipeline: a fragment for script, else the whole form."""
    form = Form(request.form, POST_FIELDS)
    body = form.get("body")[:BODY_MAX]
    editing = form.get("editing") or request.form.get("editing", "")
    post = get_post_or_404(request, editing, check_author=True) if editing else None
    end_transaction(get_db(request))  # nothing to write: hold no lock while rendering
    rendered = render_body(form, body)
    if request.headers.get("X-Requested-With") == "fetch":
        if rendered is None:
            return Response(form.errors["body"], 422, {"Content-Type": "text/plain"})
        return Response(rendered.html, 200)
    preview_html = rendered.html if rendered is not None else None
    status = 200 if rendered is not None else 422
    return editor_page(request, form, post, status, preview_html=preview_html)


# --- autosave ------------------------------------------------------------------------------


class AutosaveRefused(UnprocessableEntity):
    """An autosave the save itself would refuse (answered as JSON, like every autosave)."""


def read_autosave(request: Request) -> tuple[Form, PostInput, Rendered]:
    """Give the autosaved fields, checked by the same rules as a save, and their rendering.

    Renders with no transaction open; AutosaveRefused (422) says what a save would refuse.
    """
    form = Form(request.form, POST_FIELDS)
    data = validate_post(form, draft=True)
    end_transaction(get_db(request))
    rendered = render_body(form, data.body) if form.ok else None
    if not form.ok or rendered is None:
        raise AutosaveRefused(" ".join(form.errors.values()))
    return form, data, rendered


@login_required
def autosave_post(request: Request, slug: str) -> Response:
    """Keep the editor's current text as this author's autosave of the post (JSON)."""
    post = get_post_or_404(request, slug, check_author=True)
    _form, data, _rendered = read_autosave(request)
    db = get_db(request)
    user = current_user(request)
    begin_write(db)
    db.execute(
        delete(Revision).where(
            Revision.post_id == post.id,
            Revision.kind == "autosave",
            Revision.author_id == user.id,
        )
    )
    db.refresh(post)
    revision = add_revision(db, post, "autosave", user, post.body_md, content=data)
    db.commit()
    return json_response(
        {"ok": True, "revision": revision.number, "saved_at": autosave_time(revision)}
    )


@login_required
def autosave_new(request: Request) -> Response:
    """Create a draft from an editor that was never saved, so autosaves have a home (JSON)."""
    _form, data, rendered = read_autosave(request)
    db = get_db(request)
    user = current_user(request)
    begin_write(db)
    title = data.title
    post = Post(
        author_id=user.id,
        title=title,
        slug=unique_slug(db, slugify(title or note_title(data.body)) or "post"),
        status="draft",
        revision=0,
        updated_at=utcnow(),
        kind=data.kind,
    )
    render_onto(post, data.body, rendered, data.summary)
    set_tags(db, post, data.tags)
    db.add(post)
    db.flush()
    revision = add_revision(db, post, "save", user, "")
    db.commit()
    return json_response(
        {
            "ok": True,
            "id": post.id,
            "slug": post.slug,
            "revision": post.revision,
            "edit_url": url_for("edit_post", slug=post.slug),
            "autosave_url": url_for("autosave_post", slug=post.slug),
            "saved_at": autosave_time(revision),
        }
    )


def register(app: App) -> None:
    """Add the editor's routes to the app."""
    app.add_route("/posts", create_post, methods=["POST"])
    app.add_route("/posts/new", new_post)
    app.add_route("/posts/preview", preview_post, methods=["POST"])
    app.add_route("/posts/autosave", autosave_new, methods=["POST"])
    app.add_route("/posts/<slug:slug>/edit", edit_post, methods=["GET", "POST"])
    app.add_route("/posts/<slug:slug>/autosave", autosave_post, methods=["POST"])
    app.add_route("/posts/<slug:slug>/delete", delete_post, methods=["POST"])
