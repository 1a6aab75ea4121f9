"""Ghost import (#16): the JSON of Settings -> Export read into an importing.Bundle.

A Ghost export is ``{"db": [{"meta": {...}, "data": {"posts": [...], "tags": [...],
"posts_tags": [...], "users": [...], "posts_authors": [...], "posts_meta": [...]}}]}`` (older
versions put ``meta`` and ``data`` at the top). Posts and pages keep their title, slug, status
(published, draft, scheduled; an email-only "sent" post comes in as a draft), dates, primary
author, public tags (internal "#tags" are dropped), custom excerpt as summary, and feature
image as cover. The body is the ``html`` Ghost rendered (for both its lexical and mobiledoc
editors), through wordpress.html_to_markdown; a mobiledoc post without html whose one card is
Markdown keeps that Markdown. Images under ``/content/images/`` are read from a
``content/images`` folder beside the JSON (or in the zip) when there is one, else kept as
their URLs and reported. Each post's old URL ``/slug/`` answers 301.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from posixpath import basename, dirname
from typing import Any
from urllib.parse import unquote, urlsplit

from pyproject.blog.importing import (
    Bundle,
    ImportedAuthor,
    ImportedMedia,
    ImportedPost,
    ImportFailed,
    Source,
    register_reader,
)
from pyproject.blog.slugs import is_valid_slug, slugify
from pyproject.blog.wordpress import html_to_markdown, plain_text

FORMAT = "ghost"
_SNIFF_BYTES = 4096
_GHOST_URL = "__GHOST_URL__"
_IMAGES = "/content/images/"
_SIZED = re.compile(r"^size/w\d{1,5}(?:h\d{1,5})?/")


def sniff(source: Source) -> bool:
    return _json_entry(source) is not None


def _json_entry(source: Source) -> str | None:
    return source.first_entry(".json", _looks_like_ghost, _SNIFF_BYTES)


def _looks_like_ghost(head: bytes) -> bool:
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"exported_on"' in head and b"pyproject-export" not in head


def _parse_date(value: Any, where: str, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)  # Ghost 0.x: milliseconds
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        raise ImportFailed(f"{where}: {field}: {value!r} is not a date") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class _Reader:
    def __init__(self, source: Source, entry: str) -> None:
        self.source = source
        self.entry = entry
        self.where = source.label if source.kind == "file" else f"{source.label}: {entry}"
        if source.kind == "file":
            self.images, self.images_prefix = source.beside("content/images"), ""
        else:
            folder = dirname(entry)
            self.images, self.images_prefix = source, (f"{folder}/" if folder else "")
            self.images_prefix += "content/images/"
        self.bundle = Bundle(format=FORMAT)
        self.media_by_ref: dict[str, ImportedMedia] = {}

    def load(self) -> dict[str, Any]:
        text = self.source.text(self.entry)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFailed(
                f"{self.where}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        except RecursionError:
            raise ImportFailed(f"{self.where}: JSON nested too deeply") from None
        db = document.get("db") if isinstance(document, dict) else None
        data = (db[0] if isinstance(db, list) and db else document) or {}
        data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("posts", []), list):
            raise ImportFailed(f'{self.where}: not a Ghost export (no "data" with "posts")')
        return data

    def read(self) -> Bundle:
        data = self.load()
        rows = {
            key: [row for row in _list(data.get(key)) if isinstance(row, dict)]
            for key in ("posts", "tags", "posts_tags", "users", "posts_authors", "posts_meta")
        }
        users = {str(u.get("id")): u for u in rows["users"]}
        tags = {str(t.get("id")): t for t in rows["tags"]}
        post_tags: dict[str, list[tuple[int, str]]] = {}
        for link in rows["posts_tags"]:
            order = link.get("sort_order") or 0
            post_tags.setdefault(str(link.get("post_id")), []).append(
                (order if isinstance(order, int) else 0, str(link.get("tag_id")))
            )
        post_authors: dict[str, list[tuple[int, str]]] = {}
        for link in rows["posts_authors"]:
            order = link.get("sort_order") or 0
            post_authors.setdefault(str(link.get("post_id")), []).append(
                (order if isinstance(order, int) else 0, str(link.get("author_id")))
            )
        meta = {str(m.get("post_id")): m for m in rows["posts_meta"]}

        authors: dict[str, ImportedAuthor] = {}
        seen_slugs: dict[str, str] = {}
        internal_tags = False
        for number, row in enumerate(rows["posts"], 1):
            post_id = str(row.get("id", ""))
            where = f"{self.where}: post {number}" + (
                f" ({row.get('slug')})" if row.get("slug") else ""
            )
            post = self._post(row, where, meta.get(post_id, {}))
            if post is None:
                continue
            names = []
            for _order, tag_id in sorted(post_tags.get(post_id, [])):
                tag = tags.get(tag_id) or {}
                name = " ".join(str(tag.get("name") or "").split())
                if not name:
                    continue
                if tag.get("visibility") == "internal" or name.startswith("#"):
                    internal_tags = True
                    continue
                if name.lower() not in (n.lower() for n in names):
                    names.append(name)
            post.tags = names
            ranked = sorted(post_authors.get(post_id, []))
            author_id = ranked[0][1] if ranked else str(row.get("author_id") or "")
            user = users.get(author_id)
            if user:
                username = str(user.get("slug") or "").strip() or f"ghost-{author_id}"
                authors.setdefault(
                    username,
                    ImportedAuthor(
                        username=username,
                        email=str(user.get("email") or "").strip(),
                        display_name=str(user.get("name") or "").strip(),
                    ),
                )
                post.author = username
            if post.slug in seen_slugs:
                raise ImportFailed(
                    f"{where}: slug {post.slug!r} appears twice (also {seen_slugs[post.slug]})"
                )
            seen_slugs[post.slug] = where
            self.bundle.posts.append(post)
        self.bundle.authors = [authors[name] for name in sorted(authors)]
        if internal_tags:
            self.bundle.warnings.append(f"{self.where}: internal (#) tags were not imported")
        return self.bundle

    def _post(self, row: dict, where: str, meta: dict) -> ImportedPost | None:
        title = " ".join(str(row.get("title") or "").split()) or "(untitled)"
        kind = row.get("type") or ("page" if row.get("page") in (True, 1) else "post")
        if kind not in ("post", "page"):
            self.bundle.warnings.append(f"{where}: skipped: type {kind!r}")
            return None
        status = str(row.get("status") or "draft")
        mapped = {"published": "published", "scheduled": "scheduled"}.get(status, "draft")
        if status == "sent":
            self.bundle.warnings.append(f"{where}: sent as an email only: imported as a draft")
        if row.get("visibility") not in (None, "public"):
            self.bundle.warnings.append(
                f"{where}: for {row.get('visibility')} members on Ghost: imported for everyone"
            )
        published_at = _parse_date(row.get("published_at"), where, "published_at")
        updated_at = _parse_date(row.get("updated_at"), where, "updated_at")
        if mapped == "draft":
            published_at = None
        elif published_at is None:
            self.bundle.warnings.append(f"{where}: no published_at: imported as a draft")
            mapped = "draft"

        original = unquote(str(row.get("slug") or ""))
        slug = original if is_valid_slug(original) else slugify(original)
        slug = slug or slugify(title) or f"{kind}-{row.get('id')}"

        body = self._body(row, where)
        summary = plain_text(str(row.get("custom_excerpt") or ""))
        cover = None
        if row.get("feature_image"):
            alt = str(meta.get("feature_image_alt") or row.get("feature_image_alt") or "")
            cover = self._media(str(row["feature_image"]), alt)
        return ImportedPost(
            source_id=where,
            title=title,
            slug=slug,
            body_md=body,
            status=mapped,
            published_at=published_at,
            updated_at=updated_at,
            summary=summary,
            kind=kind,
            old_paths=[f"/{original}/"] if original and "/" not in original else [],
            cover=cover,
        )

    def _body(self, row: dict, where: str) -> str:
        if row.get("html"):
            return html_to_markdown(str(row["html"]), self.rewrite)
        markdown = _mobiledoc_markdown(row.get("mobiledoc"))
        if markdown is not None:
            return re.sub(rf"{_GHOST_URL}(?={_IMAGES})", "", markdown).strip() + "\n"
        if row.get("lexical") or row.get("mobiledoc"):
            self.bundle.warnings.append(
                f"{where}: no rendered html in the export: only its plain text was imported"
            )
        return (str(row.get("plaintext") or "").strip() + "\n").lstrip("\n")

    # images

    def _relative(self, url: str) -> str:
        path = unquote(urlsplit(url.replace(_GHOST_URL, "", 1)).path)
        if _IMAGES not in path:
            return ""
        return _SIZED.sub("", path.split(_IMAGES, 1)[1])

    def rewrite(self, url: str) -> str:
        """Map an image URL in a post to the media it shows (Ghost's sized copies to theirs)."""
        if not self._relative(url):
            return url.replace(_GHOST_URL, "", 1) if url.startswith(_GHOST_URL) else url
        return self._media(url, "")

    def _media(self, url: str, alt: str) -> str:
        relative = self._relative(url)
        if not relative:
            return url
        ref = _IMAGES + relative
        media = self.media_by_ref.get(ref)
        if media is None:
            name = self.images_prefix + relative
            data = self.images.read(name) if self.images and self.images.exists(name) else None
            # data None: the import's report lists it, and posts keep its URL.
            media = ImportedMedia(ref=ref, data=data, filename=basename(relative), alt=alt)
            self.media_by_ref[ref] = media
            self.bundle.media.append(media)
        elif alt and not media.alt:
            media.alt = alt
        return ref


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _mobiledoc_markdown(value: Any) -> str | None:
    """Give the Markdown of a mobiledoc whose cards are all Markdown cards (Ghost 1), or None."""
    try:
        doc = json.loads(value) if isinstance(value, str) else value
    except (ValueError, RecursionError):
        return None
    cards = doc.get("cards") if isinstance(doc, dict) else None
    sections = doc.get("sections") if isinstance(doc, dict) else None
    if not isinstance(cards, list) or not isinstance(sections, list):
        return None
    if not cards or len(sections) != len(cards):
        return None
    texts = []
    for card in cards:
        if not (
            isinstance(card, list) and len(card) == 2 and card[0] in ("markdown", "card-markdown")
        ):
            return None
        payload = card[1] if isinstance(card[1], dict) else {}
        texts.append(str(payload.get("markdown") or ""))
    return "\n\n".join(texts)


def read(source: Source) -> Bundle:
    """Give the Bundle of the Ghost export in `source`; ImportFailed naming the file and where."""
    entry = _json_entry(source)
    if entry is None:
        raise ImportFailed(f"{source.label}: not a Ghost export (JSON)")
    return _Reader(source, entry).read()


register_reader(FORMAT, sniff, read, first=True)
