"""Site-wide pieces every page uses: template context, dates, and the canonical URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyproject.blog.models import utcnow
from pyproject.lib import App, Request
from pyproject.lib.exceptions import BadRequest
from pyproject.lib.http import http_date


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """Give "3 days ago" / "in 2 hours" for a time, relative to now."""
    if value is None:
        return ""
    now = now or utcnow()
    seconds = int((now - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (
        ("year", 31_536_000),
        ("month", 2_592_000),
        ("week", 604_800),
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
    ):
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "in a moment" if future else "just now"


def register(app: App) -> None:
    """Add the template helpers every page uses."""
    try:
        zone = ZoneInfo(app.config["TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    app.extensions["timezone"] = zone

    from pyproject.blog.settings import site_settings  # (it registers after this module)

    def local(value: datetime | None) -> datetime | None:
        # The time zone of the site settings (#17); TIMEZONE in .env is its default.
        return value.astimezone(site_settings(app).zone) if value is not None else None

    def date_format(value: datetime | None, fmt: str = "%-d %B %Y") -> str:
        return local(value).strftime(fmt) if value is not None else ""

    def iso(value: datetime | None) -> str:
        return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""

    host = urlsplit(app.config["BASE_URL"]).hostname

    def entry_id(post: Any) -> str:
        # A tag URI: stays the same when the post's slug or the site's scheme changes.
        return f"tag:{host},{post.created_at:%Y-%m-%d}:post-{post.id}"

    app.jinja_env.filters.update(
        relative=relative_time,
        date=date_format,
        iso=iso,
        localtime=local,
        rfc822=http_date,
        entry_id=entry_id,
    )

    @app.context_processor
    def site_context(request: Request | None) -> dict[str, Any]:
        return {"canonical_url": canonical_url(request), "site_name": site_settings(app).title}

    def canonical_url(request: Request | None) -> str:
        if request is None:
            return ""
        try:
            path = request.path
        except BadRequest:  # an error page for an address that is not even UTF-8
            return ""
        canonical = app.config["BASE_URL"] + quote(path, safe="/:@!$&'()*+,;=-._~")
        page = request.context.get("page_number", 1)  # set by lists that have pages
        return f"{canonical}?page={page}" if page > 1 else canonical
