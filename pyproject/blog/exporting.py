"""Export (#16): the whole site, or one author's posts, as a zip a writer can keep or leave with.

The zip holds ``posts/<slug>.md`` (the Markdown as typed, under a YAML front matter),
``media/<sha256 of the file>.<ext>`` (the stored originals) with ``media.json`` (names and
alt texts), ``site.json`` (the site's public settings and its authors: username, name,
email, role; never password hashes or tokens), and with revisions
``revisions/<slug>/<n>.md``. Our own pictures in a post are written as relative links
(``../media/<file>``), so the tree reads well unzipped and any site can import it.

Deterministic: the same site gives byte-identical zips (entries in sorted order, one fixed
timestamp, YAML with sorted keys), so exports can be kept in git and diffed. The zip is
built in a temporary file and streamed from it: never held in memory.

Posts in the trash are not exported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pyproject.blog.auth import admin_required, current_user, login_required
from pyproject.blog.db import get_database
from pyproject.blog.media import get_store
from pyproject.blog.mediastore import MediaStore
from pyproject.blog.models import Media, OldSlug, Post, Redirect, Revision, User, utcnow
from pyproject.cli import command
from pyproject.lib import App, Request, current_app, render_template
from pyproject.lib.response import Response

FORMAT = "pyproject-export"
VERSION = 1
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's timestamp: zips differ only by content
SITE_SETTINGS = ("SITE_NAME", "SITE_DESCRIPTION", "BASE_URL", "TIMEZONE")
_HASH_PATH = r"([0-9a-f]{64})/[0-9a-z][0-9a-z.-]*"


def iso(value: datetime | None) -> str | None:
    """Give a time as ISO 8601 in UTC with a Z ("2026-12-04T14:30:00Z"), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dump_yaml(data: dict[str, Any]) -> str:
    """Give stable YAML: sorted keys, block style, Unicode as is, no line folding."""
    return yaml.safe_dump(
        data, sort_keys=True, allow_unicode=True, default_flow_style=False, width=10_000
    )


def with_front_matter(data: dict[str, Any], body: str) -> str:
    return f"---\n{dump_yaml(data)}---\n{body}"


def post_status(post: Post, now: datetime) -> str:
    """Give "published", "scheduled" or "draft" as the export writes it."""
    if post.status == "published" and post.published_at is not None and post.published_at > now:
        return "scheduled"
    return post.status


@dataclass
class Summary:
    posts: int = 0
    media: int = 0
    revisions: int = 0
    authors: int = 0
    missing_media: list[str] = field(default_factory=list)


class ZipWriter:
    """Entries with fixed times and modes, deflated, into a seekable binary file."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, name: str, data: bytes | str) -> None:
        info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o100644 << 16
        info.create_system = 3  # Unix, whatever system writes it
        self.zip.writestr(info, data.encode("utf-8") if isinstance(data, str) else data)

    def close(self) -> None:
        self.zip.close()


class MediaNames:
    """Our pictures' URLs in Markdown -> ``../media/<file>`` in the export."""

    def __init__(self, store: MediaStore) -> None:
        prefix = store.url("a")[:-1]  # the URL of any media name, less the name
        self.pattern = re.compile(re.escape(prefix) + _HASH_PATH)
        self.files: dict[str, str] = {}  # Media.sha256 -> "<content sha>.<ext>"

    def rewrite(self, text: str, prefix: str = "../media/") -> str:
        def replace(match: re.Match[str]) -> str:
            file = self.files.get(match.group(1))
            return prefix + file if file else match.group(0)

        return self.pattern.sub(replace, text)

    def cover(self, media: Media | None) -> str | None:
        if media is None:
            return None
        file = self.files.get(media.sha256)
        return f"media/{file}" if file else None


def _media_to_export(db: Session, author: User | None, names: MediaNames) -> list[Media]:
    """Give the pictures to export: all, or an author's own and those their posts use."""
    query = select(Media).order_by(Media.id)
    if author is None:
        return list(db.scalars(query))
    used: set[str] = set()
    bodies = db.execute(
        select(Post.body_md, Post.cover_media_id).where(
            Post.author_id == author.id, Post.deleted_at.is_(None)
        )
    )
    cover_ids: set[int] = set()
    for body, cover_id in bodies:
        used.update(m.group(1) for m in names.pattern.finditer(body))
        if cover_id is not None:
            cover_ids.add(cover_id)
    return list(
        db.scalars(
            query.where(
                (Media.owner_id == author.id) | Media.sha256.in_(used) | Media.id.in_(cover_ids)
            )
        )
    )


def write_export(
    app: App,
    out: IO[bytes],
    *,
    author: str | None = None,
    with_revisions: bool = False,
    progress: Any = None,
) -> Summary:
    """Write the export zip into `out` (a seekable binary file); give what it holds.

    `author` (a username) limits it to that author's posts, pictures and account.
    """
    store = get_store(app)
    names = MediaNames(store)
    summary = Summary()
    now = utcnow()
    with get_database(app).read() as db:
        owner = None
        if author is not None:
            owner = db.scalar(select(User).where(User.username == author))
            if owner is None:
                raise LookupError(f"no author named {author!r}")
        writer = ZipWriter(out)
        media = _media_to_export(db, owner, names)
        # media.json, then media/ ("media.json" sorts before "media/...")
        entries: dict[str, dict[str, Any]] = {}
        for item in media:
            data = store.get(item.original_name)
            if data is None:
                summary.missing_media.append(item.original_name)
                continue
            file = f"{hashlib.sha256(data).hexdigest()}.{item.ext}"
            names.files[item.sha256] = file
            if file not in entries:
                entries[file] = {
                    "alt": item.alt,
                    "decorative": item.decorative,
                    "file": f"media/{file}",
                    "filename": item.filename,
                    "owner": item.owner.username,
                }
        writer.add(
            "media.json",
            json.dumps(
                [entries[f] for f in sorted(entries)], indent=2, sort_keys=True, ensure_ascii=False
            )
            + "\n",
        )
        by_file = {names.files[m.sha256]: m for m in media if m.sha256 in names.files}
        for file in sorted(by_file):
            data = store.get(by_file[file].original_name) or b""
            writer.add(f"media/{file}", data)
            summary.media += 1

        old_slugs: dict[int, list[str]] = {}
        for slug, post_id in db.execute(select(OldSlug.slug, OldSlug.post_id)):
            old_slugs.setdefault(post_id, []).append(slug)
        old_paths: dict[int, list[str]] = {}
        for path, post_id in db.execute(select(Redirect.path, Redirect.post_id)):
            old_paths.setdefault(post_id, []).append(path)

        query = (
            select(Post)
            .where(Post.deleted_at.is_(None))
            .options(selectinload(Post.tags), selectinload(Post.cover_media))
            .order_by(Post.slug)
        )
        if owner is not None:
            query = query.where(Post.author_id == owner.id)
        slugs: list[tuple[str, int]] = []
        for post in db.scalars(query.execution_options(yield_per=500)):
            writer.add(f"posts/{post.slug}.md", _post_file(post, names, now, old_slugs, old_paths))
            slugs.append((post.slug, post.id))
            summary.posts += 1
            db.expunge(post)  # keep memory flat: the session need not remember it
            if progress is not None:
                progress()

        if with_revisions:
            for slug, post_id in slugs:
                revisions = db.scalars(
                    select(Revision).where(Revision.post_id == post_id).order_by(Revision.number)
                )
                for revision in revisions:
                    writer.add(
                        f"revisions/{slug}/{revision.number}.md", _revision_file(revision, names)
                    )
                    summary.revisions += 1

        users = select(User).order_by(User.username)
        if owner is not None:
            users = users.where(User.id == owner.id)
        authors = [
            {
                "email": user.email,
                "name": user.display_name,
                "role": user.role,
                "username": user.username,
            }
            for user in db.scalars(users)
        ]
        summary.authors = len(authors)
        site = {
            "format": FORMAT,
            "version": VERSION,
            "settings": {name.lower(): app.config.get(name, "") for name in SITE_SETTINGS},
            "authors": authors,
        }
        writer.add(
            "site.json", json.dumps(site, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
    writer.close()
    return summary


def _post_file(
    post: Post,
    names: MediaNames,
    now: datetime,
    old_slugs: dict[int, list[str]],
    old_paths: dict[int, list[str]],
) -> str:
    status = post_status(post, now)
    front = {
        "title": post.title,
        "slug": post.slug,
        "status": status,
        "published_at": iso(post.published_at) if status != "scheduled" else None,
        "publish_at": iso(post.published_at) if status == "scheduled" else None,
        "created_at": iso(post.created_at),
        "updated_at": iso(post.updated_at),
        "tags": [tag.name for tag in post.tags],
        "author": post.author.username,
        "summary": post.summary if post.summary_is_custom else "",
        "earlier_slugs": sorted(old_slugs.get(post.id, [])),
        "old_paths": sorted(old_paths.get(post.id, [])),
        "cover": names.cover(post.cover_media),
        # per-post options, written when not the default
        "comments": post.comments if post.comments != "auto" else None,
    }
    front = {key: value for key, value in front.items() if value not in (None, "", [])}
    return with_front_matter(front, names.rewrite(post.body_md))


def _revision_file(revision: Revision, names: MediaNames) -> str:
    front = {
        "number": revision.number,
        "kind": revision.kind,
        "title": revision.title,
        "summary": revision.summary,
        "tags": revision.tags,
        "author": revision.author.username if revision.author else "",
        "created_at": iso(revision.created_at),
        "words_changed": revision.words_changed,
    }
    front = {key: value for key, value in front.items() if value not in (None, "")}
    return with_front_matter(front, names.rewrite(revision.body_md, "../../media/"))


# --- the command --------------------------------------------------------------------------


def _export_arguments(parser: Any) -> None:
    parser.add_argument("file", help="the zip to write, such as site-export.zip")
    parser.add_argument("--author", help="only this author's posts, pictures and account")
    parser.add_argument(
        "--with-revisions", action="store_true", help="add every saved revision of each post"
    )


@command("export", "write the site's posts, pictures and authors to a zip", _export_arguments)
def export_command(app: App, args: Any) -> int:
    target = os.path.abspath(args.file)
    fd, temp = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w+b") as out:
            summary = write_export(app, out, author=args.author, with_revisions=args.with_revisions)
        os.replace(temp, target)
    except LookupError as problem:
        print(f"export: {problem.args[0]}", file=sys.stderr)
        return 2
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    print(
        f"Exported {summary.posts} posts, {summary.media} pictures, "
        f"{summary.revisions} revisions and {summary.authors} authors to {args.file}."
    )
    for name in summary.missing_media:
        print(f"export: picture {name} is missing from the media store", file=sys.stderr)
    return 0


# --- the pages ----------------------------------------------------------------------------


def export_response(app: App, *, author: str | None, with_revisions: bool, name: str) -> Response:
    """Build the zip in a temporary file and stream it (the file is gone once closed)."""
    out = tempfile.TemporaryFile(prefix="export-", suffix=".zip")  # noqa: SIM115 - streamed
    try:
        write_export(app, out, author=author, with_revisions=with_revisions)
        out.seek(0)
    except Exception:
        out.close()
        raise
    stamp = utcnow().strftime("%Y%m%d")
    return Response(
        out,
        200,
        {
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{name}-{stamp}.zip"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _wants_revisions(request: Request) -> bool:
    return request.form.get("with_revisions") in ("on", "1", "true")


@admin_required
def admin_export_page(request: Request) -> str:
    return render_template("admin/export.html", whole_site=True, action="admin_export")


@admin_required
def admin_export(request: Request) -> Response:
    return export_response(
        current_app(), author=None, with_revisions=_wants_revisions(request), name="site-export"
    )


@login_required
def account_export_page(request: Request) -> str:
    return render_template("admin/export.html", whole_site=False, action="account_export")


@login_required
def account_export(request: Request) -> Response:
    user = current_user(request)
    assert user is not None
    return export_response(
        current_app(),
        author=user.username,
        with_revisions=_wants_revisions(request),
        name=f"{user.username}-export",
    )


def register(app: App) -> None:
    app.add_route("/admin/export", admin_export_page, endpoint="admin_export_page")
    app.add_route("/admin/export", admin_export, methods=["POST"], endpoint="admin_export")
    app.add_route("/account/export", account_export_page, endpoint="account_export_page")
    app.add_route("/account/export", account_export, methods=["POST"], endpoint="account_export")
