"""HTTP caching for readers: validators on every anonymous page, 304s, fresh pages after changes.

Every page kind an anonymous reader can load (home, archive, post, tags, tag, author, the
feeds, the sitemap, the API, search) must send an ETag and a Last-Modified, answer
If-None-Match and If-Modified-Since with 304 while nothing changed, and with 200 again once
something readers could see has changed. Signed-in visitors get private pages with no
validators at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from blog.conftest import (
    AUTHOR,
    create_author,
    delete_post,
    edit_post,
    form_of,
    local_input,
    login,
    signup_admin,
    slug_of,
    views_of,
    write_post,
)
from pyproject.blog.db import get_database
from pyproject.blog.models import set_clock, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app


@dataclass
class Site:
    app: App
    admin: TestClient
    alice: TestClient
    reader: TestClient
    slug: str
    draft: str


def make_site(app: App) -> Site:
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    assert create_author(admin, AUTHOR.username, password=AUTHOR.password).status_code == 303
    alice = app.test_client()
    assert login(alice, AUTHOR.username, AUTHOR.password).status_code == 303
    slug = slug_of(
        write_post(alice, title="Cached post", body="## One\n\nCached words.", tags="Caching")
    )
    write_post(admin, title="Older post", body="Other words.", tags="Misc")
    draft = slug_of(write_post(alice, title="Unfinished", body="Draft words.", status="draft"))
    return Site(app, admin, alice, app.test_client(), slug, draft)


@pytest.fixture
def site(any_db_app: App) -> Site:
    """A small blog on SQLite, then on PostgreSQL."""
    return make_site(any_db_app)


@pytest.fixture
def sqlite_site(app: App) -> Site:
    return make_site(app)


@pytest.fixture
def clock() -> Iterator[Callable[[timedelta], None]]:
    """Move the app's clock forward from now; it is always put back."""
    start = utcnow()

    def advance(delta: timedelta) -> None:
        set_clock(lambda: start + delta)

    yield advance
    set_clock(None)


def reader_pages(site: Site) -> dict[str, str]:
    """Give every kind of page an anonymous reader can load, by name."""
    return {
        "home": "/",
        "archive": "/posts",
        "post": f"/posts/{site.slug}",
        "tags": "/tags",
        "tag": "/tags/caching",
        "author": "/authors/alice",
        "atom": "/feed.atom",
        "rss": "/feed.rss",
        "tag feed": "/tags/caching/feed.atom",
        "author feed": "/authors/alice/feed.atom",
        "sitemap": "/sitemap.xml",
        "search": "/search?q=cached",
        "api posts": "/api/posts",
        "api post": f"/api/posts/{site.slug}",
        "api tags": "/api/tags",
        "api search": "/api/search?q=cached",
    }


HTML_PAGES = ("home", "archive", "post", "tags", "tag", "author", "search")


def validators(response: TestResponse, what: str) -> tuple[str, str]:
    assert response.status_code == 200, (what, response.status)
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    assert etag and etag.startswith('"') and etag.endswith('"'), (what, etag)
    assert modified and parsedate_to_datetime(modified).tzinfo is not None, (what, modified)
    return etag, modified


def assert_not_modified(response: TestResponse, etag: str, what: str) -> None:
    assert response.status_code == 304, (what, response.status)
    assert response.data == b"", what
    assert response.headers.get("ETag") == etag, what


# --- 304 while nothing changes -------------------------------------------------------------


def test_every_reader_page_answers_revalidation_with_304(site: Site) -> None:
    reader = site.reader
    for what, path in reader_pages(site).items():
        first = reader.get(path)
        etag, modified = validators(first, what)
        assert "public" in first.headers.get("Cache-Control", ""), what
        assert_not_modified(reader.get(path, headers={"If-None-Match": etag}), etag, what)
        assert_not_modified(reader.get(path, headers={"If-Modified-Since": modified}), etag, what)
        assert_not_modified(reader.head(path, headers={"If-None-Match": etag}), etag, what)
        listed = reader.get(path, headers={"If-None-Match": f'"something-else", {etag}'})
        assert_not_modified(listed, etag, what)
        weak = reader.get(path, headers={"If-None-Match": f"W/{etag}"})
        assert_not_modified(weak, etag, what)

        other = reader.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200 and other.data == first.data, what
        # If-None-Match wins over If-Modified-Since.
        both = reader.get(
            path, headers={"If-None-Match": '"something-else"', "If-Modified-Since": modified}
        )
        assert both.status_code == 200, what


def test_html_reader_pages_vary_on_the_cookie(sqlite_site: Site) -> None:
    pages = reader_pages(sqlite_site)
    for what in HTML_PAGES:
        vary = sqlite_site.reader.get(pages[what]).headers.get("Vary", "")
        assert "cookie" in vary.lower(), what


def test_reading_a_post_does_not_change_its_validators(sqlite_site: Site) -> None:
    path = f"/posts/{sqlite_site.slug}"
    etag, _ = validators(sqlite_site.reader.get(path), "post")
    for _ in range(3):
        sqlite_site.reader.get(path)  # each read adds to the view count
    assert_not_modified(sqlite_site.reader.get(path, headers={"If-None-Match": etag}), etag, "post")


def test_a_page_first_asked_for_with_head_comes_whole_to_get(sqlite_site: Site) -> None:
    for what, path in reader_pages(sqlite_site).items():
        head = sqlite_site.reader.head(path)
        assert head.status_code == 200 and head.data == b"", what
        full = sqlite_site.reader.get(path)
        assert full.status_code == 200, what
        assert len(full.data) == int(head.headers["Content-Length"]) > 0, what
        assert full.headers["ETag"] == head.headers["ETag"], what


# --- 200 again after a change --------------------------------------------------------------


def revalidate_all(site: Site, before: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Revalidate every page with its old validators: each must come back whole, with new ones."""
    after = {}
    for what, path in reader_pages(site).items():
        etag, modified = before[what]
        for headers in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            fresh = site.reader.get(path, headers=headers)
            assert fresh.status_code == 200, (what, headers, fresh.status)
        after[what] = validators(fresh, what)
        assert after[what][0] != etag, what
        assert parsedate_to_datetime(after[what][1]) > parsedate_to_datetime(modified), what
        again = site.reader.get(path, headers={"If-None-Match": after[what][0]})
        assert_not_modified(again, after[what][0], what)
    return after


def collect(site: Site) -> dict[str, tuple[str, str]]:
    return {what: validators(site.reader.get(p), what) for what, p in reader_pages(site).items()}


# Pages that show a post's title (the others show its slug, or nothing of it).
SHOW_TITLES = ("home", "archive", "post", "tag", "author", "atom", "rss", "tag feed",
               "author feed", "search", "api posts", "api post", "api search")  # fmt: skip


def test_editing_a_post_makes_every_reader_page_new_again(site: Site, clock) -> None:
    before = collect(site)
    clock(timedelta(seconds=2))  # Last-Modified counts whole seconds
    edited = edit_post(site.alice, site.slug, title="Cached post renamed", body="Cached, edited.")
    assert edited.status_code == 303
    revalidate_all(site, before)
    pages = reader_pages(site)
    for what in SHOW_TITLES:
        assert "Cached post renamed" in site.reader.get(pages[what]).text, what
    assert "edited" in site.reader.get(pages["post"]).html.select_one(".post-body").get_text()


def test_every_read_of_a_post_counts_even_when_the_page_is_not_rebuilt(sqlite_site: Site):
    path = f"/posts/{sqlite_site.slug}"
    for _ in range(3):
        assert sqlite_site.reader.get(path).status_code == 200
    assert views_of(sqlite_site.app, sqlite_site.slug) == 3


def rename_author(site: Site) -> None:
    values = form_of(site.alice.get("/account"), 'main form[action="/account"]')
    values["display_name"] = "Alice Renamed"
    assert site.alice.post("/account", data=values).status_code == 303


def publish_new_post(site: Site) -> None:
    assert write_post(site.admin, title="Brand new", body="Cached news.").status_code == 303


def publish_the_draft(site: Site) -> None:
    assert edit_post(site.alice, site.draft, status="published").status_code == 303


CHANGES: dict[str, Callable[[Site], None]] = {
    "a new post": publish_new_post,
    "a draft published": publish_the_draft,
    "the author's name": rename_author,
}


@pytest.mark.parametrize("change", CHANGES)
def test_other_changes_readers_see_make_pages_new_again(sqlite_site: Site, clock, change) -> None:
    before = collect(sqlite_site)
    clock(timedelta(seconds=2))
    CHANGES[change](sqlite_site)
    revalidate_all(sqlite_site, before)


def test_trashing_a_post_makes_pages_new_again(site: Site, clock) -> None:
    pages = {w: path for w, path in reader_pages(site).items() if w not in ("post", "api post")}
    before = {what: validators(site.reader.get(path), what) for what, path in pages.items()}
    clock(timedelta(seconds=2))
    assert delete_post(site.alice, site.slug).status_code == 303
    # The post's only tag: no post readers see carries it now, so it is gone for them.
    gone = {"tag", "tag feed"}
    for what, path in pages.items():
        fresh = site.reader.get(path, headers={"If-None-Match": before[what][0]})
        assert fresh.status_code == (404 if what in gone else 200), what
        assert site.slug not in fresh.text, what
    assert site.reader.get(f"/posts/{site.slug}").status_code == 410


def test_a_scheduled_post_falling_due_makes_pages_new_again(site: Site, clock) -> None:
    when = utcnow() + timedelta(hours=1)
    publish_at = local_input(site.app, when)
    slug = slug_of(write_post(site.alice, title="Timed post", body="Due.", publish_at=publish_at))
    before = collect(site)
    clock(timedelta(hours=2))  # nothing is written: only time passes
    revalidate_all(site, before)
    assert site.reader.get(f"/posts/{slug}").status_code == 200


# --- signed-in visitors --------------------------------------------------------------------


def test_signed_in_pages_are_private_and_carry_no_validators(sqlite_site: Site) -> None:
    anonymous = {what: validators(sqlite_site.reader.get(p), what)[0]
                 for what, p in reader_pages(sqlite_site).items()}  # fmt: skip
    pages = {**reader_pages(sqlite_site), "draft": f"/posts/{sqlite_site.draft}"}
    for what, path in pages.items():
        page = sqlite_site.alice.get(path)
        assert page.status_code == 200, what
        assert page.headers.get("ETag") is None, what
        assert page.headers.get("Last-Modified") is None, what
        cache = page.headers.get("Cache-Control", "")
        assert "public" not in cache, what
        if what in (*HTML_PAGES, "draft"):
            assert "private" in cache, what
        if what in anonymous:
            revalidated = sqlite_site.alice.get(path, headers={"If-None-Match": anonymous[what]})
            assert revalidated.status_code == 200, what


# --- several workers -----------------------------------------------------------------------


def test_workers_on_the_same_database_agree_on_validators(tmp_path: Path) -> None:
    first, second = build_app(tmp_path), build_app(tmp_path)
    try:
        site = make_site(first)
        other = Site(second, site.admin, site.alice, second.test_client(), site.slug, site.draft)
        for what, path in reader_pages(site).items():
            if what == "home":
                continue  # its ETag also counts minutes, for the view counts it shows
            assert validators(site.reader.get(path), what) == validators(
                other.reader.get(path), what
            ), what
        etag, _ = validators(site.reader.get("/posts"), "archive")
        assert edit_post(site.alice, site.slug, title="Changed on worker one").status_code == 303
        assert other.reader.get("/posts", headers={"If-None-Match": etag}).status_code == 200
    finally:
        get_database(first).dispose()
        get_database(second).dispose()


# --- without a page cache ------------------------------------------------------------------


def test_with_the_page_cache_off_pages_still_revalidate_and_every_read_counts(
    tmp_path: Path,
) -> None:
    app = build_app(tmp_path, PAGE_CACHE_MB=0)
    try:
        assert app.page_cache is None
        site = make_site(app)
        path = f"/posts/{site.slug}"
        first = site.reader.get(path)
        etag, _ = validators(first, "post")
        assert site.reader.get(path).text == first.text
        assert_not_modified(site.reader.get(path, headers={"If-None-Match": etag}), etag, "post")
        assert views_of(app, site.slug) == 2
    finally:
        get_database(app).dispose()
