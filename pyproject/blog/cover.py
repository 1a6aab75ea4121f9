"""A post's cover image: the picture of the library shown atop it, in lists, previews and feeds.

A post points at one picture of its author's library (`Post.cover_media_id`). Everything
that shows a cover asks this module for a `Cover`: the post page's <picture>, the list
thumbnail, `og:image` and JSON-LD (a copy at most 1600 px wide in the picture's own
format, which every link preview reads), and the feeds' enclosure (the cleaned original,
whose length is known). URLs are absolute where they leave the site (previews, feeds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pyproject.blog.forms import Form
from pyproject.blog.markup import PICTURE_SIZES, PICTURE_SOURCES
from pyproject.blog.media import get_store, picture_info, thumbnail_url, variant_list
from pyproject.blog.mediastore import MediaStore
from pyproject.blog.models import Media, Post, User
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
    )


def post_cover(post: Post, app: App | None = None) -> Cover | None:
    """Give a post's Cover, or None when it has none (the `cover` filter of templates)."""
    if post is None or getattr(post, "cover_media_id", None) is None:
        return None
    media = post.cover_media
    if media is None:
        return None
    app = app or current_app()
    return cover_of(media, get_store(app), str(app.config["BASE_URL"]))


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


def choices_for(db: Session, owner_id: int) -> list[Choice]:
    """Give the pictures of an author's library, newest first, as cover choices."""
    rows = db.execute(
        select(Media.id, Media.filename, Media.width, Media.height, Media.alt, Media.decorative)
        .where(Media.owner_id == owner_id)
        .order_by(Media.created_at.desc(), Media.id.desc())
        .limit(LIBRARY_CHOICES)
    )
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
    found = db.scalar(select(Media.owner_id).where(Media.id == media_id))
    if found is None or found != owner.id:
        form.error("cover", "Choose a cover from the author's own pictures.")


def register(app: App) -> None:
    """Give templates the `cover` filter: `post|cover` is its Cover or None."""
    app.jinja_env.filters["cover"] = lambda post: post_cover(post)
