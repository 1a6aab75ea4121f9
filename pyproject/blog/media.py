"""Pictures in posts: uploads, the media library, variants, and how posts show them.

`POST /media` checks every file of the upload (pyproject/blog/images.py), cleans and
stores each original under its upload's SHA-256 (the same bytes twice are one picture
and one URL), and queues the variants job; nothing is stored unless every file passes.
`GET /media` is the library: an author's own pictures (an administrator sees all) with
alt text, the posts that use each, and delete for the unused ones.

A picture is in the library of every author who uploaded it (`MediaOwner`, each with
their own label and alt text): the same bytes from a second author are the same picture
and URL, now in both libraries. Deleting takes it out of that author's library only while
another author holds it; its files go with the last one, and never while a post uses it.

Which posts use a picture is read from their Markdown (any text holding its hash), so it
can never disagree with what the posts show. When a picture's variants are made, every
post that uses it is rendered again: its <picture> lists them, and the site version
(so every cached page and validator) changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, event, func, insert, or_, select
from sqlalchemy.orm import Session

from pyproject.blog import images, jobs
from pyproject.blog.auth import current_user, login_required, safe_next
from pyproject.blog.db import begin_write, end_transaction, get_database, get_db
from pyproject.blog.images import ImageRefused
from pyproject.blog.markup import RenderRefused
from pyproject.blog.mediastore import MediaStore, media_store
from pyproject.blog.models import Media, MediaOwner, Post, User, utcnow
from pyproject.blog.rendering import RenderTimeout, render_post
from pyproject.lib import App, Request, current_app, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import NotFound
from pyproject.lib.response import json_response

log = logging.getLogger(__name__)

ALT_MAX = 500
LABEL_MAX = 120
LIBRARY_LIMIT = 500
# An upload's hash as it appears in a URL of ours: "<sha256>/<name>".
_HASH_IN_URL = re.compile(r"([0-9a-f]{64})/[0-9a-z][0-9a-z.-]*")
# A URL as Markdown or HTML may hold it: up to a space, a bracket or a quote.
_URL_WITH_HASH = re.compile(r"""[^\s()<>"'\[\]]*?([0-9a-f]{64})/[0-9a-z][0-9a-z.-]*""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def get_store(app: App) -> MediaStore:
    """Give the app's media store (made once, from the settings)."""
    store = app.extensions.get("media_store")
    if store is None:
        store = app.extensions["media_store"] = media_store(app.config)
    return store


def file_label(filename: str) -> str:
    """Give an upload's file name as a label: its last part, without control characters."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = _CONTROL.sub("", name).strip()
    return name[:LABEL_MAX] or "The file"


def variant_list(media: Media) -> list[dict[str, Any]]:
    """Give the variants the job recorded for a picture ([] until it ran)."""
    try:
        value = json.loads(media.variants or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def variant_names(media: Media) -> list[str]:
    """Give the media names of a picture's variants."""
    return [f"{media.sha256}/{v['w']}.{v['ext']}" for v in variant_list(media)]


def picture_info(store: MediaStore, media: Media) -> dict[str, Any]:
    """Give what the renderer needs of a picture: its size and srcsets (markup._Pictures)."""
    groups: dict[str, list[str]] = {"avif": [], "webp": [], "fallback": []}
    for variant in sorted(variant_list(media), key=lambda v: v["w"]):
        key = "fallback" if variant["ext"] == media.ext else variant["ext"]
        if key in groups:
            url = store.url(f"{media.sha256}/{variant['w']}.{variant['ext']}")
            groups[key].append(f"{url} {int(variant['w'])}w")
    srcset = {key: ", ".join(urls) for key, urls in groups.items() if urls}
    return {"width": media.width, "height": media.height, "srcset": srcset}


def thumbnail_url(store: MediaStore, media: Media) -> str:
    """Give the URL of a small copy for the library grid (the original until variants exist)."""
    for variant in sorted(variant_list(media), key=lambda v: v["w"]):
        if variant["ext"] in ("webp", media.ext):
            return store.url(f"{media.sha256}/{variant['w']}.{variant['ext']}")
    return store.url(media.original_name)


def pictures_for(app: App, text: str) -> dict[str, Any]:
    """Give, for each URL of one of our pictures in `text`, what the renderer needs of it.

    The image lookup render_post asks: only URLs under the store's own address for that
    picture count (a path, or the site's BASE_URL and a path).
    """
    found = {match.group(1) for match in _HASH_IN_URL.finditer(text)}
    if not found:
        return {}
    store = get_store(app)
    with get_database(app).read() as db:
        pictures = list(db.scalars(select(Media).where(Media.sha256.in_(sorted(found)))))
    if not pictures:
        return {}
    by_hash = {media.sha256: media for media in pictures}
    base = str(app.config.get("BASE_URL", ""))
    result: dict[str, Any] = {}
    for match in _URL_WITH_HASH.finditer(text):
        media = by_hash.get(match.group(1))
        if media is None:
            continue
        url = match.group(0)
        folder = store.url(media.original_name).rsplit("/", 1)[0] + "/"
        if url.startswith(folder) or (folder.startswith("/") and url.startswith(base + folder)):
            result[url] = picture_info(store, media)
    return result


@dataclass(frozen=True)
class Use:
    """A post that shows a picture."""

    title: str
    slug: str
    status: str
    in_trash: bool
    author_id: int
    public: bool  # readers can see it now: others' posts are named only then


def uses_of(db: Session, hashes: Iterable[str]) -> dict[str, list[Use]]:
    """Give, for each picture hash, the posts that show it (the trash included).

    A post shows a picture when its Markdown holds the picture's hash, or it is its cover.
    """
    wanted = sorted(set(hashes))
    uses: dict[str, list[Use]] = {sha: [] for sha in wanted}
    now = utcnow()
    columns = (
        Post.title,
        Post.slug,
        Post.status,
        Post.deleted_at,
        Post.author_id,
        Post.published_at,
    )
    for start in range(0, len(wanted), 50):
        chunk = wanted[start : start + 50]
        rows = db.execute(
            select(*columns, Post.body_md)
            .where(or_(*(Post.body_md.contains(sha, autoescape=True) for sha in chunk)))
            .order_by(Post.id)
        )
        for *row, body in rows:
            for sha in chunk:
                if sha in body:
                    uses[sha].append(_use(row, now))
    # A post whose cover it is uses it too (cover.py, #15).
    covers = db.execute(
        select(Media.sha256, *columns)
        .join(Post, Post.cover_media_id == Media.id)
        .where(Media.sha256.in_(wanted))
        .order_by(Post.id)
    )
    for sha, *row in covers:
        use = _use(row, now)
        if use not in uses[sha]:
            uses[sha].append(use)
    return uses


def _use(row: Any, now: Any) -> Use:
    """Give the Use of a (title, slug, status, deleted_at, author_id, published_at) row."""
    title, slug, status, deleted_at, author_id, published_at = row
    public = (
        status == "published"
        and deleted_at is None
        and published_at is not None
        and published_at <= now
    )
    return Use(title, slug, status, deleted_at is not None, author_id, public)


@event.listens_for(Media, "after_insert")
def _in_its_uploaders_library(_mapper: Any, connection: Any, media: Media) -> None:
    """Put every new picture in its uploader's library, whoever made it (uploads, imports)."""
    connection.execute(
        insert(MediaOwner).values(
            media_id=media.id,
            user_id=media.owner_id,
            filename=media.filename or "",
            alt=media.alt or "",
            decorative=bool(media.decorative),
            created_at=media.created_at or utcnow(),
        )
    )


@dataclass(frozen=True)
class LibraryItem:
    """A picture as one author's library shows it: with their label and alt text for it.

    Anything else (`id`, `width`, `variants`, `owner`...) is the picture's own.
    """

    media: Media
    filename: str
    alt: str
    decorative: bool
    owners: int  # how many libraries hold it
    mine: bool  # in the viewer's own library (an admin sees others' too)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.media, name)


def visible_media(db: Session, user: User) -> list[LibraryItem]:
    """Give the pictures a user's library shows: their own, or every one for an admin.

    Each with the user's own label and alt text, or (an admin's view of another's
    picture) its first uploader's.
    """
    mine = and_(MediaOwner.media_id == Media.id, MediaOwner.user_id == user.id)
    if user.is_admin:
        query = select(Media, MediaOwner).outerjoin(MediaOwner, mine)
        query = query.order_by(Media.created_at.desc(), Media.id.desc())
    else:
        query = select(Media, MediaOwner).join(MediaOwner, mine)
        query = query.order_by(MediaOwner.created_at.desc(), Media.id.desc())
    rows = db.execute(query.limit(LIBRARY_LIMIT)).all()
    counts = dict(
        db.execute(
            select(MediaOwner.media_id, func.count())
            .where(MediaOwner.media_id.in_([media.id for media, _ in rows]))
            .group_by(MediaOwner.media_id)
        ).all()
    )
    return [
        LibraryItem(media, own.filename, own.alt, own.decorative, counts.get(media.id, 0), True)
        if own is not None
        else LibraryItem(
            media, media.filename, media.alt, media.decorative, counts.get(media.id, 0), False
        )
        for media, own in rows
    ]


def media_or_404(request: Request, media_id: int) -> tuple[Media, MediaOwner | None]:
    """Give a picture the signed-in user may change, and their row for it, else 404.

    Their own pictures; any for an admin (whose row may be None).
    """
    user = current_user(request)
    db = get_db(request)
    media = db.get(Media, media_id)
    own = db.get(MediaOwner, (media_id, user.id)) if media is not None and user else None
    if media is None or user is None or (own is None and not user.is_admin):
        raise NotFound("There is no such picture in your library.")
    return media, own


def follow_first_owner(media: Media, row: MediaOwner) -> None:
    """Copy an owner's label and alt text to the picture when they are its first uploader."""
    if row.user_id == media.owner_id:
        media.filename, media.alt, media.decorative = row.filename, row.alt, row.decorative


def markdown_for(alt: str, url: str) -> str:
    """Give the Markdown that shows a picture: ![alt](url), brackets in the alt escaped."""
    safe_alt = re.sub(r"([\[\]\\])", r"\\\1", " ".join(alt.split()))
    return f"![{safe_alt}]({url})"


# --- pages ---------------------------------------------------------------------------------


def library_page(
    request: Request,
    status: int = 200,
    *,
    problems: list[str] | None = None,
    typed_alt: str = "",
    alt_errors: dict[int, tuple[str, str]] | None = None,
    refused_uses: tuple[int, list[Use]] | None = None,
) -> tuple[str, int]:
    """Give the library page (with what went wrong, and what was typed, if anything)."""
    db = get_db(request)
    user = current_user(request)
    items = visible_media(db, user)
    store = get_store(current_app())
    uses = uses_of(db, (media.sha256 for media in items))
    config = current_app().config
    return render_template(
        "media/index.html",
        items=items,
        uses=uses,
        store=store,
        thumbnail_url=thumbnail_url,
        markdown_for=markdown_for,
        problems=problems or [],
        typed_alt=typed_alt,
        alt_errors=alt_errors or {},
        refused_uses=refused_uses,
        next_url=request.args.get("next", ""),
        max_files=config["MEDIA_MAX_FILES"],
        max_size=images.megabytes(config["MEDIA_MAX_BYTES"]),
    ), status


@login_required
def library(request: Request) -> Any:
    """The media library: a grid of pictures with their alt text and the posts using them."""
    return library_page(request)


def refused(request: Request, status: int, messages: list[str], typed_alt: str) -> Any:
    """Answer an upload that stored nothing: JSON for scripts, else the library with why."""
    if request.wants_json:
        return json_response(
            {"error": {"status": status, "message": " ".join(messages), "problems": messages}},
            status,
        )
    return library_page(request, status, problems=messages, typed_alt=typed_alt)


@login_required
def upload(request: Request) -> Any:
    """Check, clean and store the uploaded pictures; queue their variants (POST /media)."""
    app = current_app()
    config = app.config
    user = current_user(request)
    db = get_db(request)
    alt = " ".join(request.form.get("alt", "").split())
    decorative = request.form.get("decorative") in ("on", "1", "true")
    files = [f for f in request.files.getlist("file") if f.filename or f.size]
    if len(alt) > ALT_MAX:
        return refused(request, 422, [f"Alt text may be at most {ALT_MAX} characters."], alt)
    if not files:
        return refused(request, 422, ["Choose a picture to upload."], alt)
    if len(files) > config["MEDIA_MAX_FILES"]:
        return refused(
            request,
            413,
            [
                f"You sent {len(files)} files; one upload may carry at most "
                f"{config['MEDIA_MAX_FILES']}. Nothing was stored."
            ],
            alt,
        )
    end_transaction(db)  # no lock held while pictures are decoded and encoded
    problems: list[ImageRefused] = []
    accepted: list[tuple[str, str, images.Cleaned | None]] = []
    seen: set[str] = set()
    for upload_file in files:
        label = file_label(upload_file.filename)
        if upload_file.size > config["MEDIA_MAX_BYTES"]:
            problems.append(
                ImageRefused(
                    413,
                    f"{label} is {images.megabytes(upload_file.size)}; a picture may be at "
                    f"most {images.megabytes(config['MEDIA_MAX_BYTES'])}.",
                )
            )
            continue
        data = upload_file.read()
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        if db.scalar(select(Media.id).where(Media.sha256 == sha)) is not None:
            accepted.append((sha, label, None))  # stored before: the same picture
            continue
        try:
            cleaned = images.clean(
                data,
                label,
                max_bytes=config["MEDIA_MAX_BYTES"],
                max_pixels=config["MEDIA_MAX_PIXELS"],
            )
        except ImageRefused as problem:
            problems.append(problem)
            continue
        accepted.append((sha, label, cleaned))
    if problems:
        status = 413 if any(p.status == 413 for p in problems) else 422
        messages = [p.message for p in problems] + ["Nothing was stored."]
        return refused(request, status, messages, alt)
    store = get_store(app)
    put: list[str] = []
    try:
        for sha, _label, cleaned in accepted:
            if cleaned is not None:
                name = f"{sha}/original.{cleaned.ext}"
                store.put(name, cleaned.data, cleaned.content_type)
                put.append(name)
    except Exception:
        # The storage failed part way (S3 down: a 503): take back what this upload put.
        for name in put:
            with contextlib.suppress(Exception):
                store.delete(name)
        raise
    begin_write(db)
    stored: list[tuple[Media, str]] = []
    for sha, label, cleaned in accepted:
        media = db.scalar(select(Media).where(Media.sha256 == sha))
        if media is None and cleaned is not None:
            media = Media(
                sha256=sha,
                owner_id=user.id,
                filename=label,
                source_format=cleaned.source_format,
                ext=cleaned.ext,
                content_type=cleaned.content_type,
                width=cleaned.width,
                height=cleaned.height,
                bytes=len(cleaned.data),
                animated=cleaned.animated,
                alt=alt,
                decorative=decorative and not alt,
                variants="[]",
            )
            db.add(media)
            db.flush()
            jobs.enqueue(db, make_variants, media.id)
        if media is None:
            continue  # deleted since it was looked up: nothing of this upload was stored
        row = db.get(MediaOwner, (media.id, user.id))
        if row is None:  # new to this author's library (perhaps in another's already)
            row = MediaOwner(
                media_id=media.id,
                user_id=user.id,
                filename=label,
                alt=alt,
                decorative=decorative and not alt,
                created_at=utcnow(),
            )
            db.add(row)
        elif alt and not row.alt:
            row.alt, row.decorative = alt, False
            follow_first_owner(media, row)
        stored.append((media, row.alt))
    db.commit()
    if request.wants_json:
        return json_response(
            {
                "files": [
                    {
                        "url": store.url(media.original_name),
                        "markdown": markdown_for(own_alt, store.url(media.original_name)),
                        "width": media.width,
                        "height": media.height,
                        "alt": own_alt,
                    }
                    for media, own_alt in stored
                ]
            }
        )
    count = len(stored)
    flash(f"Uploaded {count} picture{'s' if count != 1 else ''}.", "success")
    return redirect(safe_next(request.form.get("next"), url_for("media_library")))


@login_required
def edit_alt(request: Request, media_id: int) -> Any:
    """Change the alt text an author gives a picture, or mark it decorative.

    An admin changing another's picture changes its first uploader's.
    """
    media, row = media_or_404(request, media_id)
    alt = " ".join(request.form.get("alt", "").split())
    decorative = request.form.get("decorative") in ("on", "1", "true")
    if len(alt) > ALT_MAX:
        message = f"Alt text may be at most {ALT_MAX} characters."
        return library_page(request, 422, alt_errors={media.id: (alt, message)})
    db = get_db(request)
    if row is None:
        row = db.get(MediaOwner, (media.id, media.owner_id))
    if row is not None:
        row.alt, row.decorative = alt, decorative and not alt
        follow_first_owner(media, row)
    else:  # a picture its first uploader left: its own alt text is the only one
        media.alt, media.decorative = alt, decorative and not alt
    db.commit()
    flash(f"Saved the alt text of {row.filename if row else media.filename}.", "success")
    return redirect(url_for("media_library"))


@login_required
def delete_media(request: Request, media_id: int) -> Any:
    """Take a picture out of the author's library; delete it and its files with the last.

    While another author holds it, only this author's row goes (refused, listing them,
    if their own posts use it). Otherwise (or an admin's delete of a picture not in their
    library) it goes for good: refused, listing the posts, if any post uses it.
    """
    media, row = media_or_404(request, media_id)
    user = current_user(request)
    db = get_db(request)
    uses = uses_of(db, [media.sha256])[media.sha256]
    others = list(
        db.scalars(
            select(MediaOwner)
            .where(MediaOwner.media_id == media.id, MediaOwner.user_id != user.id)
            .order_by(MediaOwner.created_at, MediaOwner.user_id)
        )
    )
    if row is not None and others:
        mine = [use for use in uses if use.author_id == user.id]
        if mine:
            return library_page(request, 409, refused_uses=(media.id, mine))
        label = row.filename
        db.delete(row)
        if media.owner_id == user.id:  # the next uploader becomes the first
            media.owner_id = others[0].user_id
            follow_first_owner(media, others[0])
        db.commit()
        flash(f"Removed {label} from your library (it stays in another author's).", "success")
        return redirect(url_for("media_library"))
    if uses:
        return library_page(request, 409, refused_uses=(media.id, uses))
    names = [media.original_name, *variant_names(media)]
    db.execute(delete(MediaOwner).where(MediaOwner.media_id == media.id))
    db.execute(delete(Media).where(Media.id == media.id))
    db.commit()
    store = get_store(current_app())
    for name in names:
        store.delete(name)
    flash(f"Deleted {media.filename}.", "success")
    return redirect(url_for("media_library"))


# --- the variants job ------------------------------------------------------------------------


@jobs.job(retries=3)
def make_variants(media_id: int) -> None:
    """Make a picture's variants, then render again every post that shows it (idempotent)."""
    make_variants_now(jobs.current_app(), media_id)


def make_variants_now(app: App, media_id: int) -> int:
    """Make and record a picture's variants; give how many posts were rendered again."""
    database = get_database(app)
    store = get_store(app)
    with database.read() as db:
        media = db.get(Media, media_id)
        if media is None:
            return 0
        sha, original = media.sha256, media.original_name
    data = store.get(original)
    if data is None:
        return 0  # deleted meanwhile
    made = images.make_variants(data)
    for variant in made:
        store.put(f"{sha}/{variant.width}.{variant.ext}", variant.data, variant.content_type)
    record = [{"w": v.width, "h": v.height, "ext": v.ext} for v in made]
    with database.write() as db:
        media = db.get(Media, media_id)
        if media is None:  # deleted while the variants were made: take them away too
            gone = True
        else:
            gone = False
            media.variants = json.dumps(record)
    if gone:
        for variant in made:
            store.delete(f"{sha}/{variant.width}.{variant.ext}")
        return 0
    return rerender_users(app, sha)


def rerender_users(app: App, sha: str) -> int:
    """Render again every post whose Markdown shows the picture; give how many were."""
    from pyproject.blog.commands import write_renders

    database = get_database(app)
    with database.read() as db:
        sources = dict(
            db.execute(
                select(Post.id, Post.body_md).where(Post.body_md.contains(sha, autoescape=True))
            ).all()
        )
    renders = {}
    for post_id, body in sources.items():  # no transaction open while rendering
        try:
            renders[post_id] = render_post(body, app)
        except (RenderRefused, RenderTimeout) as problem:
            log.warning("post %s kept its old HTML: %s", post_id, problem)
    return write_renders(database, sources, renders) if renders else 0


def _raise_upload_limit(request: Request) -> None:
    """Let a signed-in author's upload body hold MEDIA_MAX_FILES pictures of full size.

    Only for POST /media from a session with a user in it; everyone else keeps the site's
    MAX_CONTENT_LENGTH, so strangers cannot make the server spool large bodies.
    """
    if request.method != "POST" or request.path != "/media":
        return
    session = request.session
    if session is None or not isinstance(session.get("user_id"), int):
        return
    config = current_app().config
    room = config["MEDIA_MAX_BYTES"] * config["MEDIA_MAX_FILES"] + 1_000_000
    request.max_content_length = max(request.max_content_length, room)


def register(app: App) -> None:
    """Add the media library's routes, the image lookup and the upload size hook."""
    app.extensions["image_lookup"] = pictures_for
    app.before_request(_raise_upload_limit)
    app.add_route("/media", library, endpoint="media_library")
    app.add_route("/media", upload, methods=["POST"], endpoint="upload_media")
    app.add_route("/media/<int:media_id>/alt", edit_alt, methods=["POST"])
    app.add_route("/media/<int:media_id>/delete", delete_media, methods=["POST"])
