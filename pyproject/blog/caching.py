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
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from pyproject.blog.db import Database
from pyproject.blog.models import Post, SiteState, Tag, User, utcnow
from pyproject.lib import App, Request, current_app
from pyproject.lib.pagecache import PageCache
from pyproject.lib.response import Shared, not_modified, with_validators

READER_MODELS = (Post, Tag, User)


def track_changes(sessions: sessionmaker) -> None:
    """Bump the site version whenever a flush writes something readers could see."""

    @event.listens_for(sessions, "after_flush")
    def bump(session: Session, _context: Any) -> None:
        touched = (*session.new, *session.dirty, *session.deleted)
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
# next scheduled one (when the answer will change by itself).
_STATE_SQL = (
    "SELECT (SELECT version FROM site_state WHERE id = 1),"
    " (SELECT changed_at FROM site_state WHERE id = 1),"
    " (SELECT max(published_at) FROM posts WHERE status = 'published'"
    "  AND deleted_at IS NULL AND published_at <= %(now)s),"
    " (SELECT min(published_at) FROM posts WHERE status = 'published'"
    "  AND deleted_at IS NULL AND published_at > %(now)s)"
)

_VERSION_SQL = "SELECT version FROM site_state WHERE id = 1"


class ContentState:
    """What anonymous readers see now, as validators: cheap to ask, shared by all workers.

    On SQLite each thread keeps one read-only connection and asks `PRAGMA data_version`,
    which changes only when another connection commits: while it stays the same, and no
    scheduled post has fallen due, the validators computed last time still hold, and no
    query runs at all. On PostgreSQL one small query runs per request.
    """

    def __init__(self, database: Database, templates_version: str) -> None:
        self.database = database
        self.templates_version = templates_version
        self.sqlite_path = (
            database.engine.url.database if database.engine.dialect.name == "sqlite" else None
        )
        self._local = threading.local()

    def validators(self) -> tuple[str, datetime]:
        """Give the ETag (opaque part) and Last-Modified of every anonymous page right now."""
        now = utcnow()
        if self.sqlite_path is None:
            return self._compute(self._query_postgres(now), now)
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = sqlite3.connect(
                self.sqlite_path, check_same_thread=False, isolation_level=None
            )
            connection.execute("PRAGMA query_only = 1")
            local.data_version = None
        data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        cached = getattr(local, "cached", None)
        if cached is not None and cached[2] <= now and (cached[3] is None or now < cached[3]):
            if data_version == local.data_version:
                return cached[0], cached[1]
            # Something was committed, most often a view count, which changes no page:
            # the site version tells (every change readers could see bumps it).
            version = connection.execute(_VERSION_SQL).fetchone()[0]
            if version == cached[4]:
                local.data_version = data_version
                return cached[0], cached[1]
        rows = self._query_sqlite(connection, now)
        etag, last_modified = self._compute(rows, now)
        local.data_version = data_version
        local.cached = (etag, last_modified, now, rows[3], rows[0])
        return etag, last_modified

    def _query_sqlite(self, connection: sqlite3.Connection, now: datetime) -> tuple[Any, ...]:
        stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        row = connection.execute(
            _STATE_SQL.replace("%(now)s", "?"),
            (stamp, stamp),
        ).fetchone()
        return tuple(_parse_sqlite_time(v) if isinstance(v, str) else v for v in row)

    def _query_postgres(self, now: datetime) -> tuple[Any, ...]:
        with self.database.engine.connect() as connection:
            return tuple(
                connection.exec_driver_sql(
                    _STATE_SQL,
                    {"now": now},
                ).one()
            )

    def _compute(self, rows: tuple[Any, ...], now: datetime) -> tuple[str, datetime]:
        version, changed_at, newest, _next_due = rows
        changed_at = changed_at or now
        last_modified = max(changed_at, newest) if newest else changed_at
        stamp = int(newest.timestamp()) if newest else 0
        return f"{self.templates_version}-{version or 0}-{stamp}", last_modified


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
        app.page_cache = PageCache(
            etag_for=validators,
            parameters=PAGE_PARAMETERS,
            request_class=app.request_class,
            max_bytes=megabytes * 1024 * 1024,
        )
