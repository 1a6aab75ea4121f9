"""Tests for pyproject/blog/site.py: relative times, the date filters, entry ids, canonical URLs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from blog.conftest import BASE_URL, Cast, slug_of, write_post
from pyproject.app import create_app
from pyproject.blog.db import get_database
from pyproject.blog.models import Post
from pyproject.blog.site import relative_time
from pyproject.lib import App

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)


# --- relative_time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=60), "1 minute ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=23), "23 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=6), "6 days ago"),
        (timedelta(days=7), "1 week ago"),
        (timedelta(days=29), "4 weeks ago"),
        (timedelta(days=30), "1 month ago"),
        (timedelta(days=364), "12 months ago"),
        (timedelta(days=365), "1 year ago"),
        (timedelta(days=3 * 365 + 5), "3 years ago"),
        (-timedelta(seconds=30), "in a moment"),
        (-timedelta(hours=2), "in 2 hours"),
        (-timedelta(days=1), "in 1 day"),
        (-timedelta(days=14), "in 2 weeks"),
    ],
)
def test_relative_time_names_the_largest_whole_unit(delta, text):
    assert relative_time(NOW - delta, NOW) == text


def test_relative_time_of_nothing_is_empty():
    assert relative_time(None, NOW) == ""


def test_relative_time_compares_instants_not_wall_clocks():
    paris_noon = datetime(2026, 3, 15, 13, 0, tzinfo=timezone(timedelta(hours=1)))

    assert relative_time(paris_noon, NOW) == "just now"


def test_relative_time_defaults_to_the_apps_clock(clock):
    clock.now = NOW

    assert relative_time(NOW - timedelta(hours=3)) == "3 hours ago"


# --- the filters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The blog's app in India's time zone (filters only: its database is never touched)."""
    folder = tmp_path_factory.mktemp("zoned")
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "BASE_URL": "https://blog.example",
            "DATABASE_URL": f"sqlite:///{folder / 'unused.sqlite3'}",
            "INSTANCE_PATH": str(folder),
            "TIMEZONE": "Asia/Kolkata",
            "LOG_LEVEL": "WARNING",
        }
    )
    yield app
    get_database(app).dispose()


def render(app: App, source: str, **values) -> str:
    return app.jinja_env.from_string(source).render(**values)


def test_the_date_filter_shows_the_time_in_the_sites_zone(zoned: App):
    late = datetime(2026, 3, 15, 20, 0, tzinfo=UTC)  # already the 16th in India

    assert render(zoned, "{{ t|date }}", t=late) == "16 March 2026"
    assert render(zoned, "{{ t|date('%H:%M %Z') }}", t=late) == "01:30 IST"
    assert render(zoned, "[{{ t|date }}]", t=None) == "[]"


def test_the_localtime_filter_gives_an_aware_time_in_the_sites_zone(zoned: App):
    shown = render(zoned, "{{ (t|localtime).isoformat() }}", t=datetime(2026, 1, 1, tzinfo=UTC))

    assert shown == "2026-01-01T05:30:00+05:30"


def test_the_iso_filter_gives_utc_in_whole_seconds(zoned: App):
    t = datetime(2026, 3, 15, 13, 0, 7, 999_999, tzinfo=timezone(timedelta(hours=1)))

    assert render(zoned, "{{ t|iso }}", t=t) == "2026-03-15T12:00:07+00:00"
    assert render(zoned, "[{{ t|iso }}]", t=None) == "[]"


def test_the_rfc822_filter_gives_an_http_date(zoned: App):
    assert render(zoned, "{{ t|rfc822 }}", t=NOW) == "Sun, 15 Mar 2026 12:00:00 GMT"


def test_the_relative_filter_is_relative_time(zoned: App, clock):
    clock.now = NOW

    assert render(zoned, "{{ t|relative }}", t=NOW - timedelta(days=2)) == "2 days ago"


def test_entry_ids_are_tag_uris_that_survive_a_new_slug_or_scheme(zoned: App):
    post = Post(id=42, slug="first", created_at=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))

    first = render(zoned, "{{ p|entry_id }}", p=post)
    post.slug = "renamed"

    assert first == "tag:blog.example,2025-12-31:post-42"
    assert render(zoned, "{{ p|entry_id }}", p=post) == first


def test_an_unknown_time_zone_falls_back_to_utc(tmp_path: Path):
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "INSTANCE_PATH": str(tmp_path),
            "TIMEZONE": "Mars/Olympus_Mons",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        assert str(app.extensions["timezone"]) == "UTC"
        assert render(app, "{{ t|date('%H:%M') }}", t=NOW) == "12:00"
    finally:
        get_database(app).dispose()


# --- what every page gets ------------------------------------------------------------------


def canonical(page) -> str | None:
    link = page.html.select_one('link[rel="canonical"]')
    return link["href"] if link is not None else None


def test_every_page_names_the_site(shared_cast: Cast):
    page = shared_cast.anonymous.get("/tags")

    assert page.html.select_one("header .site-name").get_text(strip=True) == "PyProject"
    assert page.html.select_one('meta[property="og:site_name"]')["content"] == "PyProject"


def test_the_canonical_url_is_the_base_url_and_the_path_quoted(shared_cast: Cast):
    slug_of(write_post(shared_cast.author, title="Quoted", tags="Café au lait"))

    page = shared_cast.anonymous.get("/tags/" + quote("café-au-lait"))

    assert page.status_code == 200
    assert canonical(page) == f"{BASE_URL}/tags/caf%C3%A9-au-lait"


def test_the_canonical_url_leaves_the_query_string_out(shared_cast: Cast):
    page = shared_cast.anonymous.get("/posts?utm_source=mail&page=1")

    assert canonical(page) == f"{BASE_URL}/posts"


def test_an_error_page_for_a_path_that_is_not_utf8_has_no_canonical_url(shared_cast: Cast):
    page = shared_cast.anonymous.get("/posts/%FF%FE")

    assert page.status_code == 400
    assert not canonical(page)
