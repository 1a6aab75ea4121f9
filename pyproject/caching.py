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
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pyproject.db import get_db
from pyproject.lib import App, Request, current_app
from pyproject.lib.response import not_modified, with_validators
from pyproject.models import Post, SiteState, Tag, User, utcnow

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


def reader_validators(request: Request) -> tuple[str, datetime]:
    """Give the ETag (opaque part) and Last-Modified of what anonymous readers see now."""
    db = get_db(request)
    now = utcnow()
    state = db.execute(select(SiteState.version, SiteState.changed_at)).first()
    newest = db.scalar(
        select(func.max(Post.published_at)).where(
            Post.status == "published", Post.published_at <= now, Post.deleted_at.is_(None)
        )
    )
    version, changed_at = (state.version, state.changed_at) if state else (0, now)
    last_modified = max(changed_at, newest) if newest else changed_at
    stamp = int(newest.timestamp()) if newest else 0
    return f"{current_app().extensions['templates_version']}-{version}-{stamp}", last_modified


def is_anonymous(request: Request) -> bool:
    """Give whether the request carries no session cookie (the page is the same for all)."""
    interface = current_app().session_interface
    return interface.cookie_for(request.environ) not in request.cookies


def reader_page(
    view: Callable[..., Any] | None = None, *, refresh_seconds: int | None = None
) -> Any:
    """Make a view answer anonymous readers' revalidations with 304 before it runs.

    `refresh_seconds` mixes a time bucket into the ETag, for pages that also show
    something that changes without a write readers could see (view counts).
    """

    def decorate(func_: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func_)
        def wrapper(request: Request, **kwargs: Any) -> Any:
            if not is_anonymous(request) or request.method not in ("GET", "HEAD"):
                return func_(request, **kwargs)
            etag, last_modified = reader_validators(request)
            if refresh_seconds:
                etag += f"-{int(utcnow().timestamp()) // refresh_seconds}"
            early = not_modified(request.environ, etag=etag, last_modified=last_modified)
            if early is not None:
                early.headers.set("Cache-Control", "public, no-cache")
                return early
            response = current_app().make_response(func_(request, **kwargs))
            if response.status_code == 200:
                with_validators(response, etag=etag, last_modified=last_modified)
                response.headers.setdefault("Cache-Control", "public, no-cache")
            return response

        return wrapper

    return decorate(view) if view is not None else decorate


def init_app(app: App, root: Path) -> None:
    """Compute the templates' version once, at start-up."""
    app.extensions["templates_version"] = templates_version([root / "templates", root / "static"])
