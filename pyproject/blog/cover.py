"""A post's cover image: the picture of the library shown atop it, in lists, previews and feeds.

A post points at one picture of its author's library (`Post.cover_media_id`). Everything
that shows a cover asks this module for a `Cover`: the post page's <picture>, the list
thumbnail, `og:image` and JSON-LD (a copy at most 1600 px wide in the picture's own
format, which every link preview reads), and the feeds' enclosure (the cleaned original,
whose length is known). URLs are absolute where they leave the site (previews, feeds).

A picture held by several authors (media.py) has an alt text from each: a post's cover
says what its author wrote for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, object_session

from pyproject.blog.forms import Form
from pyproject.blog.markup import PICTURE_SIZES, PICTURE_SOURCES
from pyproject.blog.media import get_store, picture_info, thumbnail_url, variant_list
from pyproject.blog.mediastore import MediaStore
from pyproject.blog.models import Media, MediaOwner, Post, User
from pyproject.lib import App, current_app

# Link previews (Facebook, Slack, Mastodon...) want a picture of at least 1200 px and read
# JPEG, PNG and GIF everywhere; larger copies only cost them time.
PREVIEW_MAX_WIDTH = 1600
THUMBNAIL_WIDTH = 480
LIBRARY_CHOICES = 200


@dataclass(frozen=True, slots=True)
class Image:
    """One copy of a picture: where it is and how big."""

    url: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Cover:
    """What the pages and feeds show of a post's cover."""

    media_id: int
    alt: str
    src: str  # the cleaned original as the site's own pages load it
    original: Image  # the cleaned original, absolute URL
    content_type: str  # the original's
    length: int  # the original's size in bytes
    preview: Image  # for og:image and JSON-LD, absolute URL
    thumbnail: Image  # for lists
    sources: tuple[tuple[str, str], ...]  # (type, srcset) for <picture>, best first
    srcset: str  # the fallback format's srcset ("" until the variants exist)
    sizes: str = PICTURE_SIZES
    owner_id: int = 0  # its first uploader's, whose alt text `alt` is


def absolute(url: str, base_url: str) -> str:
    """Give `url` as an absolute URL (a path from the local store gets the site's address)."""
    return base_url.rstrip("/") + url if url.startswith("/") else url


def scaled(width: int, height: int, to_width: int) -> tuple[int, int]:
    """Give the size of a picture scaled to `to_width` (never up), keeping its shape."""
    if width <= to_width:
        return width, height
    return to_width, max(1, round(height * to_width / width))


def cover_of(media: Media, store: MediaStore, base_url: str) -> Cover:
    """Give the Cover of a picture of the library."""
    src = store.url(media.original_name)
    original = Image(absolute(src, base_url), media.width, media.height)
    # The largest copy in the original's own format no wider than previews want.
    preview = original
    for variant in sorted(variant_list(media), key=lambda v: v["w"]):
        if variant["ext"] == media.ext and variant["w"] <= PREVIEW_MAX_WIDTH:
            url = absolute(store.url(f"{media.sha256}/{variant['w']}.{variant['ext']}"), base_url)
            preview = Image(url, int(variant["w"]), int(variant["h"]))
    small = scaled(media.width, media.height, THUMBNAIL_WIDTH)
    thumbnail = Image(thumbnail_url(store, media), *small)
    srcsets = picture_info(store, media)["srcset"]
    sources = tuple((kind, srcsets[key]) for kind, key in PICTURE_SOURCES if srcsets.get(key))
    return Cover(
        media_id=media.id,
        alt=media.alt,
        src=src,
        original=original,
        content_type=media.content_type,
        length=media.bytes,
        preview=preview,
        thumbnail=thumbnail,
        sources=sources,
        srcset=srcsets.get("fallback", ""),
        owner_id=media.owner_id,
    )


def post_cover(post: Post, app: App | None = None) -> Cover | None:
    """Give a post's Cover, or None when it has none (the `cover` filter of templates)."""
    if post is None or getattr(post, "cover_media_id", None) is None:
        return None
    if not isinstance(post, Post):  # a post read for its page: its cover was read with it
        return getattr(post, "cover", None)
    media = post.cover_media
    if media is None:
        return None
    app = app or current_app()
    found = cover_of(media, get_store(app), str(app.config["BASE_URL"]))
    db = object_session(post)
    if db is None or post.author_id == media.owner_id:  # the common case: no query
        return found
    alts = authors_alts(db, [(media.id, post.author_id)])
    return with_authors_alt(found, alts, post.author_id)


def authors_alts(
    db: Session, pairs: Iterable[tuple[int | None, int]]
) -> dict[tuple[int, int], str]:
    """Give the alt text each author gave each picture, for (picture id, author id) pairs."""
    wanted = {(media_id, user_id) for media_id, user_id in pairs if media_id is not None}
    if not wanted:
        return {}
    rows = db.execute(
        select(MediaOwner.media_id, MediaOwner.user_id, MediaOwner.alt, MediaOwner.decorative)
        .where(MediaOwner.media_id.in_(sorted({media_id for media_id, _ in wanted})))
        .where(MediaOwner.user_id.in_(sorted({user_id for _, user_id in wanted})))
    )
    return {
        (media_id, user_id): alt
        for media_id, user_id, alt, decorative in rows
        if (media_id, user_id) in wanted and (alt or decorative)
    }


def with_authors_alt(cover: Cover, alts: dict[tuple[int, int], str], author_id: int) -> Cover:
    """Give the cover with the alt text its post's author gave the picture, if they gave one."""
    alt = alts.get((cover.media_id, author_id))
    return cover if alt is None or alt == cover.alt else dataclasses.replace(cover, alt=alt)


def covers_of_posts(db: Session, posts: Iterable[Post], app: App) -> dict[int, Cover]:
    """Give the covers of these posts by post id, each with its author's alt text."""
    posts = [post for post in posts if post.cover_media_id is not None]
    covers = covers_by_id(db, (post.cover_media_id for post in posts), app)
    others = [
        p for p in posts if p.author_id != getattr(covers.get(p.cover_media_id), "owner_id", 0)
    ]
    alts = authors_alts(db, ((post.cover_media_id, post.author_id) for post in others))
    return {
        post.id: with_authors_alt(covers[post.cover_media_id], alts, post.author_id)
        for post in posts
        if post.cover_media_id in covers
    }


def covers_by_id(db: Session, media_ids: Iterable[int | None], app: App) -> dict[int, Cover]:
    """Give the Covers of these pictures (those that exist), by picture id, in one query."""
    wanted = sorted({media_id for media_id in media_ids if media_id is not None})
    if not wanted:
        return {}
    store, base = get_store(app), str(app.config["BASE_URL"])
    pictures = db.scalars(select(Media).where(Media.id.in_(wanted)))
    return {media.id: cover_of(media, store, base) for media in pictures}


# --- choosing a cover in the editor ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """A picture the editor offers as a cover."""

    id: int
    label: str
    needs_alt: bool


# Built once (compiled once), run on the connection: the editor asks on every open (#13).
_CHOICES = (
    select(
        Media.id,
        MediaOwner.filename,
        Media.width,
        Media.height,
        MediaOwner.alt,
        MediaOwner.decorative,
    )
    .join(MediaOwner, MediaOwner.media_id == Media.id)
    .where(MediaOwner.user_id == bindparam("owner_id"))
    .order_by(MediaOwner.created_at.desc(), Media.id.desc())
    .limit(LIBRARY_CHOICES)
)


def choices_for(db: Session, owner_id: int) -> list[Choice]:
    """Give the pictures of an author's library, newest first, as cover choices."""
    rows = db.connection().execute(_CHOICES, {"owner_id": owner_id})
    return [
        Choice(
            media_id,
            f"{filename} ({width} × {height})" + (f": {alt[:60]}" if alt else ""),
            not alt and not decorative,
        )
        for media_id, filename, width, height, alt, decorative in rows
    ]


def read_choice(form: Form) -> int | None:
    """Give the picture id the form's cover field names, or None for "no cover".

    Anything but digits is an error beside the field (the select only offers ids).
    """
    raw = form.get("cover").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        form.error("cover", "Choose a cover from the list.")
        return None
    return int(raw)


def check_choice(db: Session, form: Form, media_id: int | None, owner: User) -> None:
    """Record an error beside the cover field unless the picture is in the owner's library."""
    if media_id is None:
        return
    if db.get(MediaOwner, (media_id, owner.id)) is None:
        form.error("cover", "Choose a cover from the author's own pictures.")


def register(app: App) -> None:
    """Give templates the `cover` filter: `post|cover` is its Cover or None."""
    app.jinja_env.filters["cover"] = lambda post: post_cover(post)
