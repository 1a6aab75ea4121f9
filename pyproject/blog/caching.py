"""HTTP caching for readers: validators from the content, 304 before anything is rendered.

Every change readers could see (a post, a tag, an author saved through the ORM) bumps
one site-wide version in the database, in the same transaction; a scheduled post that
falls due changes the newest visible publication time. Together with the templates'
own version they make the ETag of every anonymous page, so several workers and hosts
agree on it and never answer 304 for a page that changed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from pyproject.blog.db import Database, Statement
from pyproject.blog.models import Media, Post, SiteState, Tag, User, utcnow, visible_sql
from pyproject.lib import App, Request, current_app, current_request
from pyproject.lib.pagecache import PageCache
from pyproject.lib.response import Shared, not_modified, with_validators

# Media: a cover's picture and alt text show on its post's pages, in lists and feeds (#15).
READER_MODELS = (Post, Tag, User, Media)


def track_changes(sessions: sessionmaker) -> None:
    """Bump the site version whenever a flush writes something readers could see.

    A "dirty" object whose attributes were only set to the values they had changes
    nothing (after_flush still sees each attribute's history), so it retires no page.
    """

    @event.listens_for(sessions, "after_flush")
    def bump(session: Session, _context: Any) -> None:
        changed = (item for item in session.dirty if session.is_modified(item))
        touched = (*session.new, *changed, *session.deleted)
        if any(isinstance(item, READER_MODELS) for item in touched):
            session.execute(
                update(SiteState)
                .where(SiteState.id == 1)
                .values(version=SiteState.version + 1, changed_at=utcnow())
            )


def templates_version(folders: Iterable[Path]) -> str:
    """Give a short hash of every template and static file (a deploy changes the ETags)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(folder)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


# The site version, when it last changed, the newest visible publication time, and the
# next scheduled one (when the answer will change by itself). Only the rule of what
# readers may see is put in, compiled from its one definition (models.visible).
_STATE_SQL = Statement(
    sqlite=(
        "SELECT (SELECT version FROM site_state WHERE id = 1),"  # noqa: S608  # nosec B608
        " (SELECT changed_at FROM site_state WHERE id = 1),"
        f" (SELECT max(published_at) FROM posts WHERE {visible_sql('sqlite', ':now')}),"
        " (SELECT min(published_at) FROM posts WHERE status = 'published'"
        "  AND deleted_at IS NULL AND published_at > :now)"
    ),
    postgresql=(
        "SELECT (SELECT version FROM site_state WHERE id = 1),"  # noqa: S608  # nosec B608
        " (SELECT changed_at FROM site_state WHERE id = 1),"
        f" (SELECT max(published_at) FROM posts WHERE {visible_sql('postgresql', '%(now)s')}),"
        " (SELECT min(published_at) FROM posts WHERE status = 'published'"
        "  AND deleted_at IS NULL AND published_at > %(now)s)"
    ),
)

_VERSION_SQL = Statement(
    sqlite="SELECT version FROM site_state WHERE id = 1",
    postgresql="SELECT version FROM site_state WHERE id = 1",
)


class StateRow(NamedTuple):
    """What _STATE_SQL gives."""

    version: int | None
    changed_at: datetime | None
    newest: datetime | None  # the newest visible post's publication time
    next_due: datetime | None  # the next scheduled post's


@dataclass(slots=True)
class KeptValidators:
    """The validators a thread computed last, and how long they hold.

    They hold from `computed_at` until `next_due` (a scheduled post falls due), while
    the connection's `data_version` (SQLite) or the site `version` stays the same.
    """

    etag: str
    last_modified: datetime
    computed_at: datetime
    next_due: datetime | None
    version: int | None
    data_version: int


class ContentState:
    """What anonymous readers see now, as validators: cheap to ask, shared by all workers.

    On SQLite each thread keeps one read-only connection and asks `PRAGMA data_version`,
    which changes only when another connection commits: while it stays the same, and no
    scheduled post has fallen due, the validators computed last time still hold, and no
    query runs at all. On PostgreSQL one small query runs per request, on the thread's
    own connection.
    """

    def __init__(self, database: Database, templates_version: str) -> None:
        self.database = database
        self.templates_version = templates_version
        self.raw = database.raw_connections(read_only=True)

    @property
    def _local(self) -> Any:
        """This thread's namespace: its `connection`, and the validators `kept` from it."""
        return self.raw.local

    def validators(self) -> tuple[str, datetime]:
        """Give the ETag (opaque part) and Last-Modified of every anonymous page right now.

        Asked once per request: the reader page and the site settings both want them, and
        on PostgreSQL each ask was a query (#13).
        """
        request = current_request()
        if request is None:
            return self._validators()
        kept = request.context.get("content_state.validators")
        if kept is None:
            kept = request.context["content_state.validators"] = self._validators()
        return kept

    def _validators(self) -> tuple[str, datetime]:
        now = utcnow()
        raw = self.raw
        if raw.dialect != "sqlite":
            return self._compute(self._query(now), now)
        connection = raw.connection()
        data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        kept: KeptValidators | None = getattr(raw.local, "kept", None)
        if (
            kept is not None
            and kept.computed_at <= now
            and (kept.next_due is None or now < kept.next_due)
        ):
            if data_version == kept.data_version:
                return kept.etag, kept.last_modified
            # Something was committed, most often a view count, which changes no page:
            # the site version tells (every change readers could see bumps it).
            if raw.run(_VERSION_SQL).fetchone()[0] == kept.version:
                kept.data_version = data_version
                return kept.etag, kept.last_modified
        row = self._query(now)
        etag, last_modified = self._compute(row, now)
        raw.local.kept = KeptValidators(
            etag, last_modified, now, row.next_due, row.version, data_version
        )
        return etag, last_modified

    def _query(self, now: datetime) -> StateRow:
        if self.raw.dialect != "sqlite":
            return StateRow(*self.raw.run(_STATE_SQL, {"now": now}).fetchone())
        # SQLite keeps UTC wall time as text (models.UTCDateTime): compared as such.
        stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        row = self.raw.run(_STATE_SQL, {"now": stamp}).fetchone()
        return StateRow(*(_parse_sqlite_time(v) if isinstance(v, str) else v for v in row))

    def _compute(self, row: StateRow, now: datetime) -> tuple[str, datetime]:
        changed_at = row.changed_at or now
        newest = row.newest
        last_modified = max(changed_at, newest) if newest else changed_at
        stamp = int(newest.timestamp()) if newest else 0
        return f"{self.templates_version}-{row.version or 0}-{stamp}", last_modified


def _parse_sqlite_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def etag_for(state: ContentState) -> Callable[[int | None], tuple[str, datetime]]:
    """Give the function of a refresh period that gives reader pages' current validators.

    The ETag (quoted) is the content state's; pages that also show what changes without
    a write readers could see (view counts) mix in a bucket of `refresh` seconds.
    """

    def current(refresh: int | None) -> tuple[str, datetime]:
        etag, last_modified = state.validators()
        if refresh:
            etag = f"{etag}-{int(utcnow().timestamp()) // refresh}"
        return f'"{etag}"', last_modified

    return current


def reader_page(
    view: Callable[..., Any] | None = None, *, refresh_seconds: int | None = None
) -> Any:
    """Make a view answer anonymous readers from validators and the page cache.

    A revalidation that matches is a 304 before the view runs; a page rendered at the
    current validators, with the session untouched, is declared shared
    (`response.shared`), so the app's page cache (pyproject.lib.pagecache) answers the
    next anonymous reader of the URL before the app runs. A view may set
    `response.shared = Shared(on_hit=...)` itself to give what runs whenever the kept
    page is served (counting a view); this decorator fills in the validators.
    """

    def decorate(func_: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func_)
        def wrapper(request: Request, **kwargs: Any) -> Any:
            app = current_app()
            if request.method not in ("GET", "HEAD") or not app.is_anonymous(request.environ):
                return func_(request, **kwargs)
            quoted, last_modified = app.extensions["reader_validators"](refresh_seconds)
            etag = quoted[1:-1]
            early = not_modified(request.environ, etag=etag, last_modified=last_modified)
            if early is not None:
                early.headers.add("Cache-Control", "public, no-cache")
                early.vary_cookie = True
                early.shared = Shared(quoted, refresh_seconds)
                return early
            response = app.make_response(func_(request, **kwargs))
            # Signed-in readers see other pages at the same URLs: caches must tell apart.
            response.vary_cookie = True
            if response.status_code != 200:
                response.shared = None
                return response
            with_validators(response, etag=etag, last_modified=last_modified)
            response.headers.setdefault("Cache-Control", "public, no-cache")
            session = request.session
            if (session is None or not session.modified) and isinstance(response.body, str | bytes):
                on_hit = response.shared.on_hit if response.shared is not None else None
                response.shared = Shared(quoted, refresh_seconds, on_hit)
            else:
                response.shared = None
            return response

        return wrapper

    return decorate(view) if view is not None else decorate


# The query parameters that make a reader page distinct (others share its cache entry).
PAGE_PARAMETERS = ("page", "q")

# ActivityStreams JSON, asked for by fediverse servers at post and author URLs (#19).
ACTIVITY_TYPES = ("application/activity+json", "application/ld+json")


def wants_activity_streams(accept: str) -> bool:
    """Give whether an Accept header prefers ActivityStreams JSON to HTML (#19).

    `application/activity+json`, or `application/ld+json` with the ActivityStreams
    profile, at a quality above zero and no lower than text/html's.
    """
    if "json" not in accept:
        return False
    best_json, html = 0.0, 0.0
    for item in accept.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        kind = kind.lower()
        quality, profile = 1.0, ""
        for param in params:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif name == "profile":
                profile = value
        if kind == ACTIVITY_TYPES[0] or (
            kind == ACTIVITY_TYPES[1] and "https://www.w3.org/ns/activitystreams" in profile
        ):
            best_json = max(best_json, quality)
        elif kind == "text/html":
            html = max(html, quality)
    return best_json > 0 and best_json >= html


class ReaderPageCache(PageCache):
    """The page cache, never answering (nor keeping) what fediverse servers ask for (#19).

    Post and author URLs give ActivityStreams JSON to them and HTML to browsers (`Vary:
    Accept`); the kept HTML page must not answer the JSON request.
    """

    def key(self, environ: dict[str, Any], args: Any = None) -> str | None:
        if wants_activity_streams(environ.get("HTTP_ACCEPT", "")):
            return None
        return super().key(environ, args)


def init_app(app: App, root: Path, database: Database) -> None:
    """Track changes, and give the app a page cache for its anonymous readers."""
    track_changes(database.sessions)
    version = templates_version([root / "templates", root / "static"])
    state = ContentState(database, version)
    app.extensions["templates_version"] = version
    app.extensions["content_state"] = state
    validators = app.extensions["reader_validators"] = etag_for(state)
    megabytes = app.config.get("PAGE_CACHE_MB", 8)
    if megabytes > 0:
        app.page_cache = ReaderPageCache(
            etag_for=validators,
            parameters=PAGE_PARAMETERS,
            request_class=app.request_class,
            max_bytes=megabytes * 1024 * 1024,
        )
