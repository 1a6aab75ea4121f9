"""The page cache the app asks first (pyproject.lib.pagecache), on a small App.

The view below declares its page shared (`response.shared`) the way the blog's
`reader_page` does; the tests check what the cache then answers by itself, and
everything it must leave to the app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from pyproject.lib import App, Request, Response, not_modified, with_validators
from pyproject.lib.pagecache import PageCache
from pyproject.lib.response import Shared
from pyproject.lib.testing import TestClient

CHANGED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Site:
    """A small App with one cacheable page kind, its version, and what the view saw."""

    def __init__(self, make_app: Callable[..., App], **cache_options: Any) -> None:
        self.version = 1
        self.renders: list[str] = []
        self.hits: list[str] = []
        self.fail_validators = False
        self.fail_hit = False
        self.app = make_app()
        self.pages = PageCache(
            etag_for=self.etag_for,
            parameters=("page", "q"),
            request_class=self.app.request_class,
            **cache_options,
        )
        self.app.page_cache = self.pages
        self.app.add_route("/page/<slug>", self.page, methods=("GET", "POST"), csrf=False)
        self.app.add_route("/signed", self.signed)

    def etag_for(self, refresh: int | None) -> tuple[str, datetime]:
        if self.fail_validators:
            raise RuntimeError("the database is away")
        return f'"v{self.version}"', CHANGED_AT

    def on_hit(self, environ: dict[str, Any]) -> None:
        if self.fail_hit:
            raise RuntimeError("the counter failed")
        self.hits.append(environ["REQUEST_METHOD"])

    def page(self, request: Request, slug: str) -> Response:
        self.renders.append(request.path)
        quoted, last_modified = self.pages.etag_for(None)
        anonymous = self.app.is_anonymous(request.environ)
        early = not_modified(request.environ, etag=quoted[1:-1], last_modified=last_modified)
        if early is not None:
            early.headers.add("Cache-Control", "public, no-cache")
            early.shared = Shared(quoted) if anonymous else None
            return early
        text = f"{slug} v{self.version} page={request.args.get('page', '1')}"
        response = with_validators(Response(text), etag=quoted[1:-1], last_modified=last_modified)
        response.headers.set("Cache-Control", request.args.get("cc", "public, no-cache"))
        if "cookie" in request.args:
            response.set_cookie("seen", "1")
        if anonymous:
            response.shared = Shared(quoted, on_hit=self.on_hit)
        return response

    def signed(self, request: Request) -> str:
        request.session["user"] = "alice"
        return "signed in"

    def client(self) -> TestClient:
        return self.app.test_client()


@pytest.fixture
def site(make_app: Callable[..., App]) -> Site:
    return Site(make_app)


def test_a_second_reader_gets_the_kept_page_with_every_header(site: Site) -> None:
    first = site.client().get("/page/a")
    second = site.client().get("/page/a")
    assert site.renders == ["/page/a"]
    assert second.status_code == 200
    assert second.data == first.data == b"a v1 page=1"
    assert list(second.headers.items()) == list(first.headers.items())
    assert second.headers["Content-Length"] == str(len(first.data))
    assert second.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src" in second.headers["Content-Security-Policy"]
    assert site.hits == ["GET"]


def test_a_new_version_retires_the_kept_page(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    site.version = 2
    response = client.get("/page/a")
    assert response.data == b"a v2 page=1"
    assert site.renders == ["/page/a", "/page/a"]
    assert client.get("/page/a").data == b"a v2 page=1"
    assert len(site.renders) == 2


def test_revalidation_is_a_304_from_the_cache(site: Site) -> None:
    client = site.client()
    etag = client.get("/page/a").headers["ETag"]
    response = client.get("/page/a", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, no-cache"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Content-Type" not in response.headers
    assert "Content-Length" not in response.headers
    assert site.renders == ["/page/a"]
    assert site.hits == []  # a revalidation reads nothing
    since = client.get("/page/a", headers={"If-Modified-Since": "Sun, 01 Nov 2026 12:00:00 GMT"})
    assert since.status_code == 304
    stale = client.get("/page/a", headers={"If-None-Match": '"v0"'})
    assert stale.status_code == 200
    assert stale.data == b"a v1 page=1"


def test_a_304_the_app_gave_is_kept_too(site: Site) -> None:
    """A reader who only ever revalidates is answered from the cache after the first time."""
    client = site.client()
    for _ in range(3):
        response = client.get("/page/b", headers={"If-None-Match": '"v1"'})
        assert response.status_code == 304
        assert response.headers["ETag"] == '"v1"'
    assert site.renders == ["/page/b"]
    site.version = 2
    assert client.get("/page/b", headers={"If-None-Match": '"v1"'}).status_code == 200


def test_head_gets_the_headers_without_the_body_and_counts_nothing(site: Site) -> None:
    client = site.client()
    first = client.get("/page/a")
    response = client.head("/page/a")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(first.data))
    assert site.hits == ["HEAD"]  # the hook decides what a method counts for
    assert site.renders == ["/page/a"]


def test_a_head_first_keeps_no_body(site: Site) -> None:
    client = site.client()
    client.head("/page/a")
    assert client.get("/page/a").data == b"a v1 page=1"
    assert site.renders == ["/page/a", "/page/a"]


def test_signed_in_readers_always_reach_the_app(site: Site) -> None:
    site.client().get("/page/a")
    reader = site.client()
    reader.get("/signed")
    assert reader.cookies  # the session cookie is set
    reader.get("/page/a")
    reader.get("/page/a", headers={"If-None-Match": '"v1"'})
    assert site.renders == ["/page/a", "/page/a", "/page/a"]


@pytest.mark.parametrize("cookie", ["session=forged", "__Host-session=x", "a=1; session=x"])
def test_any_cookie_naming_the_session_reaches_the_app(site: Site, cookie: str) -> None:
    site.client().get("/page/a")
    site.client().get("/page/a", headers={"Cookie": cookie})
    assert site.renders == ["/page/a", "/page/a"]


def test_other_cookies_still_get_the_kept_page(site: Site) -> None:
    site.client().get("/page/a")
    response = site.client().get("/page/a", headers={"Cookie": "theme=dark"})
    assert response.data == b"a v1 page=1"
    assert site.renders == ["/page/a"]


def test_only_the_parameters_pages_read_make_a_new_entry(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    assert client.get("/page/a?utm_source=feed").data == b"a v1 page=1"
    assert client.get("/page/a?page=2").data == b"a v1 page=2"
    assert client.get("/page/a?page=2&utm_source=x").data == b"a v1 page=2"
    assert site.renders == ["/page/a", "/page/a"]
    assert "/page/a?" in site.pages
    assert "/page/a?page=2" in site.pages


def test_a_malformed_query_string_goes_to_the_app(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    response = client.get("/page/a?page=%ff")
    assert response.status_code == 400
    assert site.pages.key({"PATH_INFO": "/page/a", "QUERY_STRING": "page=%ff"}) is None


@pytest.mark.parametrize(
    "query",
    ["cookie=1", "cc=private,%20no-cache", "cc=no-store"],
    ids=["sets-a-cookie", "private", "no-store"],
)
def test_pages_for_one_reader_are_never_kept(site: Site, query: str) -> None:
    client = site.client()
    client.get(f"/page/a?{query}")
    client.get(f"/page/a?{query}")
    assert len(site.renders) == 2
    assert len(site.pages) == 0


def test_a_session_the_view_touched_keeps_the_page_out(site: Site) -> None:
    """The app sets the session cookie on such a response: the cache must not keep it."""
    client = site.client()
    client.get("/signed")
    assert len(site.pages) == 0


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example"}, {"Host": "localhost:99999"}],
    ids=["unknown", "malformed"],
)
def test_a_host_the_app_refuses_is_refused_by_the_app(site: Site, headers: dict) -> None:
    client = site.client()
    client.get("/page/a")
    response = client.get("/page/a", headers=headers)
    assert response.status_code == 400
    assert b"a v1" not in response.data


def test_writes_are_never_answered_from_the_cache(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    response = client.post("/page/a", data={"x": "1"})
    assert response.status_code == 200
    assert site.renders == ["/page/a", "/page/a"]


def test_validators_that_fail_leave_the_answer_to_the_app(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    site.fail_validators = True
    response = client.get("/page/a")
    assert response.status_code == 500  # the app's own error page, logged there
    assert b"the database is away" not in response.data


def test_a_hook_that_fails_leaves_the_answer_to_the_app(site: Site) -> None:
    client = site.client()
    client.get("/page/a")
    site.fail_hit = True
    response = client.get("/page/a")
    assert response.status_code == 200  # the app rendered it (its view ran no hook)
    assert site.renders == ["/page/a", "/page/a"]


def test_the_cache_is_bounded_in_bytes_and_entries(make_app: Callable[..., App]) -> None:
    site = Site(make_app, max_entries=3)
    client = site.client()
    for slug in "abcde":
        client.get(f"/page/{slug}")
    assert len(site.pages) == 3
    assert "/page/a?" not in site.pages
    assert "/page/e?" in site.pages
    # Entries of about 2,500 bytes (a long slug, in the key and the body, and headers):
    # under an eighth of the budget each, so kept, but ten of them are over it.
    small = Site(make_app, max_bytes=20_000)
    client = small.client()
    for slug in "abcdefghij":
        assert client.get(f"/page/{slug * 700}").status_code == 200
    assert 0 < len(small.pages) < 10
    assert f"/page/{'j' * 700}?" in small.pages
    client.get(f"/page/{'k' * 3000}")  # over an eighth of the budget: never kept
    assert f"/page/{'k' * 3000}?" not in small.pages
    small.pages.clear()
    assert len(small.pages) == 0


def test_answers_from_the_cache_are_logged_like_the_apps(site: Site, logs) -> None:
    client = site.client()
    client.get("/page/a")
    logs.clear()
    client.get("/page/a")
    client.get("/page/a", headers={"If-None-Match": '"v1"'})
    client.head("/page/a")
    lines = [r.getMessage() for r in logs.records if r.name == "pyproject.request"]
    assert len(lines) == 3
    assert lines[0].startswith("GET /page/a 200 11 ")
    assert lines[1].startswith("GET /page/a 304 - ")
    assert lines[2].startswith("HEAD /page/a 200 11 ")
    assert all(r.levelno == logging.DEBUG for r in logs.records)
