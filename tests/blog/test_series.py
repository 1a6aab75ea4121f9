"""Series, pinned posts and per-post options (#17)."""

from __future__ import annotations

import json

import pytest

from blog.conftest import Cast, field_error, form_of, set_post, slug_of, utc_ago, write_post
from pyproject.lib.testing import TestClient, TestResponse


def start_series(client: TestClient, **fields: str) -> TestResponse:
    values = form_of(client.get("/series"), "#series-form")
    values.update(fields)
    return client.post("/series", data=values)


def add_part(client: TestClient, series: str, title: str) -> TestResponse:
    page = client.get(f"/series/{series}/edit")
    values = form_of(page, "#add-part-form")
    options = {o.get_text(): o["value"] for o in page.html.select("#f-post option")}
    values["post"] = options[title]
    return client.post(f"/series/{series}/edit", data=values)


def press(client: TestClient, series: str, title: str, action: str) -> TestResponse:
    page = client.get(f"/series/{series}/edit")
    for item in page.html.select("li.nav-link"):
        if item.select_one(".nav-link-label a").get_text() == title:
            form = next(f for f in item.select("form") if f.select_one(f'input[value="{action}"]'))
            return client.post(
                form["action"], data={i["name"]: i["value"] for i in form.select("input")}
            )
    raise AssertionError(title)


def three_part_series(cast: Cast) -> list[str]:
    slugs = [slug_of(write_post(cast.author, title=f"Part {n}")) for n in ("one", "two", "three")]
    assert start_series(cast.author, title="Learning Rust").location == "/series/learning-rust/edit"
    for n in ("one", "two", "three"):
        assert add_part(cast.author, "learning-rust", f"Part {n}").status_code == 303
    return slugs


def test_a_series_has_a_page_a_feed_and_parts_with_neighbours(cast: Cast) -> None:
    one, two, three = three_part_series(cast)
    page = cast.anonymous.get("/series/learning-rust")
    assert page.status_code == 200
    assert [a.get_text() for a in page.html.select(".series-parts .post-item-title a")] == [
        "Part one",
        "Part two",
        "Part three",
    ]
    feed = cast.anonymous.get("/series/learning-rust/feed.atom")
    assert feed.status_code == 200 and feed.text.count("<entry>") == 3
    middle = cast.anonymous.get(f"/posts/{two}")
    banner = middle.html.select_one(".series-part")
    assert "Part 2 of 3 in Learning Rust" in " ".join(banner.get_text().split())
    assert banner.select_one('a[rel="prev"]')["href"] == f"/posts/{one}"
    assert banner.select_one('a[rel="next"]')["href"] == f"/posts/{three}"
    data = json.loads(middle.html.select_one('script[type="application/ld+json"]').string)
    assert data["isPartOf"]["name"] == "Learning Rust"
    assert data["isPartOf"]["url"] == "http://localhost/series/learning-rust"


def test_parts_move_and_leave_without_javascript(cast: Cast) -> None:
    _, two, three = three_part_series(cast)
    assert press(cast.author, "learning-rust", "Part three", "up").status_code == 303
    banner = cast.anonymous.get(f"/posts/{three}").html.select_one(".series-part")
    assert "Part 2 of 3" in " ".join(banner.get_text().split())
    assert press(cast.author, "learning-rust", "Part two", "remove").status_code == 303
    assert cast.anonymous.get(f"/posts/{two}").html.select_one(".series-part") is None
    assert "Part 2 of 2" in cast.anonymous.get(f"/posts/{three}").text.replace("\n", " ")


def test_a_draft_in_a_series_is_not_counted_for_readers(cast: Cast) -> None:
    one, two, _ = three_part_series(cast)
    set_post(cast.app, two, status="draft")
    banner = cast.anonymous.get(f"/posts/{one}").html.select_one(".series-part")
    assert "Part 1 of 2" in " ".join(banner.get_text().split())
    assert "Part two" not in cast.anonymous.get("/series/learning-rust").text


def test_another_author_cannot_move_or_add_alices_posts(cast: Cast) -> None:
    three_part_series(cast)
    page = cast.other.get("/series/learning-rust/edit")
    assert page.status_code == 200
    assert not page.html.select("li.nav-link form")  # no buttons beside alice's posts
    values = {"csrf_token": form_of(page, "#series-form")["csrf_token"], "action": "remove"}
    post_id = cast.author.get("/series/learning-rust/edit").html.select_one(
        'li.nav-link input[name="post"]'
    )["value"]
    refused = cast.other.post("/series/learning-rust/edit", data={**values, "post": post_id})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": ""}, "title", "required"),
        ({"title": "x" * 201}, "title", "too long"),
        ({"title": "Ok", "slug": "Not A Slug"}, "slug", "lower-case"),
    ],
)
def test_bad_series_are_422_keeping_input(
    shared_cast: Cast, fields: dict[str, str], field: str, message: str
) -> None:
    answer = start_series(shared_cast.author, description="Kept words", **fields)
    assert answer.status_code == 422
    assert message in field_error(answer, field)
    assert answer.html.select_one("#f-description").get_text() == "Kept words"


# --- pins --------------------------------------------------------------------------------


def pin(client: TestClient, slug: str) -> TestResponse:
    page = client.get(f"/posts/{slug}")
    values = form_of(page, f'form[action="/posts/{slug}/pin"]')
    return client.post(f"/posts/{slug}/pin", data=values)


def pinned(client: TestClient) -> list[str]:
    return [a.get_text() for a in client.get("/").html.select(".pinned .post-item-title a")]


def test_at_most_three_pins_a_fourth_unpins_the_oldest_and_says_so(cast: Cast) -> None:
    slugs = [slug_of(write_post(cast.author, title=f"Post {n}")) for n in range(4)]
    for n, slug in enumerate(slugs[:3]):
        set_post(cast.app, slug, published_at=utc_ago(days=10 - n))
        assert pin(cast.author, slug).status_code == 303
        set_post(cast.app, slug, pinned_at=utc_ago(hours=10 - n))
    assert pinned(cast.anonymous) == ["Post 2", "Post 1", "Post 0"]
    answer = pin(cast.author, slugs[3])
    flash = cast.author.get(answer.location).html.select_one(".flash").get_text()
    assert "“Post 0” was unpinned" in flash
    assert pinned(cast.anonymous) == ["Post 3", "Post 2", "Post 1"]
    assert pin(cast.author, slugs[3]).status_code == 303  # the same button unpins
    assert pinned(cast.anonymous) == ["Post 2", "Post 1"]


def test_only_the_author_or_an_admin_pins(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Mine"))
    token = form_of(cast.other.get("/"), 'form[action="/logout"]')["csrf_token"]
    assert cast.other.post(f"/posts/{slug}/pin", data={"csrf_token": token}).status_code == 403
    assert pinned(cast.anonymous) == []


# --- per-post options ----------------------------------------------------------------------


def set_options(client: TestClient, slug: str, **fields: str) -> TestResponse:
    values = form_of(client.get(f"/posts/{slug}"), "#options-form")
    values.update(fields)
    return client.post(f"/posts/{slug}/options", data=values)


def test_noindex_adds_robots_and_leaves_the_sitemap(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Private-ish"))
    assert f"/posts/{slug}<" in cast.anonymous.get("/sitemaps/1.xml").text
    assert set_options(cast.author, slug, noindex="on").status_code == 303
    page = cast.anonymous.get(f"/posts/{slug}")
    assert page.html.select_one('meta[name="robots"]')["content"] == "noindex"
    assert f"/posts/{slug}<" not in cast.anonymous.get("/sitemaps/1.xml").text


def test_a_canonical_override_points_elsewhere(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Cross-posted"))
    original = "https://original.example/post/1"
    assert set_options(cast.author, slug, canonical_override=original).status_code == 303
    page = cast.anonymous.get(f"/posts/{slug}")
    assert page.html.select_one('link[rel="canonical"]')["href"] == original


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "/relative", "ftp://x.example/"])
def test_a_bad_canonical_is_422_keeping_it(shared_cast: Cast, bad: str) -> None:
    slug = slug_of(write_post(shared_cast.author, title="Some post"))
    answer = set_options(shared_cast.author, slug, canonical_override=bad)
    assert answer.status_code == 422
    assert "http(s)" in field_error(answer, "canonical_override")
    assert answer.html.select_one("#f-canonical_override")["value"] == bad


def test_the_summary_is_the_custom_excerpt_of_lists_and_previews(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Long", summary="Short and sweet."))
    assert cast.anonymous.get("/").html.select_one(".summary").get_text() == "Short and sweet."
    meta = cast.anonymous.get(f"/posts/{slug}").html.select_one('meta[property="og:description"]')
    assert meta["content"] == "Short and sweet."
