"""Standalone pages (#17): posts of kind "page" at /<slug>, with the posts' machinery."""

from __future__ import annotations

import pytest

from blog.conftest import (
    Cast,
    edit_post,
    field_error,
    form_of,
    get_post,
    make_blog_app,
    write_post,
)
from pyproject.blog.db import get_database
from pyproject.blog.pages import check_page_slugs, route_clash
from pyproject.lib.routing import RoutingError
from pyproject.lib.testing import TestClient, TestResponse


def write_page(client: TestClient, **fields: str) -> TestResponse:
    """Fill in /pages/new (the posts' editor, for a page) and save; published unless told."""
    values = form_of(client.get("/pages/new"), "#post-form")
    values.update(title="About", body="Who writes here.", status="published")
    values.update(fields)
    return client.post("/posts", data=values)


def page_slug(response: TestResponse) -> str:
    assert response.status_code == 303, field_error(response, "slug") or response.status_code
    return response.location.removeprefix("/")


def test_a_page_is_written_with_the_editor_and_shown_at_its_own_address(cast: Cast) -> None:
    editor = cast.author.get("/pages/new")
    assert form_of(editor, "#post-form")["kind"] == "page"
    slug = page_slug(write_page(cast.author, title="About me", body="I *write*."))
    assert slug == "about-me"
    page = cast.anonymous.get("/about-me")
    assert page.status_code == 200
    assert page.html.select_one("h1").get_text() == "About me"
    assert page.html.select_one(".post-body em").get_text() == "write"
    assert get_post(cast.app, "about-me").kind == "page"
    moved = cast.anonymous.get("/posts/about-me")  # the posts' address leads there
    assert (moved.status_code, moved.location) == (301, "/about-me")


def test_pages_are_not_in_lists_or_post_feeds_but_in_sitemap_and_search(cast: Cast) -> None:
    page_slug(write_page(cast.author, title="Colophon", body="Set in quokkaface.", tags="meta"))
    write_post(cast.author, title="A real post", body="About quokkaface too.", tags="meta")
    for path in ("/", "/posts", "/tags/meta", "/authors/alice"):
        titles = [a.get_text() for a in cast.anonymous.get(path).html.select(".post-item-title a")]
        assert titles == ["A real post"], path
    for path in ("/feed.atom", "/feed.rss", "/tags/meta/feed.atom", "/authors/alice/feed.atom"):
        feed = cast.anonymous.get(path).text
        assert "A real post" in feed and "Colophon" not in feed, path
    sitemap = cast.anonymous.get("/sitemaps/1.xml").text
    assert "http://localhost/colophon<" in sitemap
    found = cast.anonymous.get("/search?q=quokkaface").html.select(".post-item-title a")
    assert {(a.get_text(), a["href"]) for a in found} == {
        ("Colophon", "/colophon"),
        ("A real post", "/posts/a-real-post"),
    }


def test_a_page_has_revisions_autosave_scheduling_and_trash(cast: Cast) -> None:
    slug = page_slug(write_page(cast.author, title="Now", body="Reading."))
    assert edit_post(cast.author, slug, body="Writing.").status_code == 303
    history = cast.author.get(f"/posts/{slug}/revisions")
    assert history.status_code == 200
    assert len(history.html.select(".revision-list li, table tbody tr")) >= 2
    # autosave of a new page keeps it a page
    values = form_of(cast.author.get("/pages/new"), "#post-form")
    values.update(title="Contact", body="Mail me.")
    saved = cast.author.post("/posts/autosave", data=values)
    assert saved.status_code == 200, saved.text
    assert get_post(cast.app, saved.json["slug"]).kind == "page"
    # scheduled: not shown until due
    later = page_slug(write_page(cast.author, title="Soon", publish_at="2099-01-01T09:00"))
    assert cast.anonymous.get(f"/{later}").status_code == 404
    # trash: gone for readers, back when restored
    delete = form_of(cast.author.get(f"/{slug}"), f'form[action="/posts/{slug}/delete"]')
    assert cast.author.post(f"/posts/{slug}/delete", data=delete).status_code == 303
    assert cast.anonymous.get(f"/{slug}").status_code == 410


def test_a_draft_page_is_only_its_authors(cast: Cast) -> None:
    slug = page_slug(write_page(cast.author, title="Secret plans", status="draft"))
    assert cast.anonymous.get(f"/{slug}").status_code == 404
    assert cast.other.get(f"/{slug}").status_code == 404
    assert cast.author.get(f"/{slug}").status_code == 200


@pytest.mark.parametrize(
    "slug", ["posts", "tags", "api", "admin", "media", "static", "search", "login", "pages"]
)
def test_a_slug_that_takes_a_route_is_refused_naming_it(shared_cast: Cast, slug: str) -> None:
    answer = write_page(shared_cast.author, title="Mine", slug=slug)
    assert answer.status_code == 422
    error = field_error(answer, "slug")
    assert f"“{slug}” is taken by the site's own address" in error
    assert form_of_422(answer)["slug"] == slug


def form_of_422(page: TestResponse) -> dict[str, str]:
    return page.form_values("#post-form")


def test_a_title_that_names_a_route_gets_another_slug(cast: Cast) -> None:
    assert page_slug(write_page(cast.author, title="Tags")) == "tags-page"
    assert cast.anonymous.get("/tags").html.select_one("h1").get_text() != "Tags page"


def test_a_post_may_still_use_such_a_slug(cast: Cast) -> None:
    answer = write_post(cast.author, title="Search", slug="search")
    assert answer.location == "/posts/search"


def test_a_route_added_later_that_takes_a_page_stops_the_start(cast: Cast) -> None:
    page_slug(write_page(cast.author, title="Shop"))
    assert route_clash("shop", cast.app) is None
    cast.app.router.rules = list(cast.app.router.rules)  # (the app has served: add by hand)
    cast.app._got_first_request = False
    cast.app.add_route("/shop/<int:item>", lambda request, item: "")
    with pytest.raises(RoutingError, match=r"/shop.*/shop/<int:item>"):
        check_page_slugs(cast.app, get_database(cast.app))


def test_the_start_checks_existing_pages(cast: Cast, tmp_path) -> None:
    page_slug(write_page(cast.author, title="Hello"))
    url = str(get_database(cast.app).engine.url)
    make_blog_app(tmp_path / "again", database_url=url)  # no clash: it starts
