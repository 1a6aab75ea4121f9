"""Tests for pyproject/blog/cover.py: a post's cover on its page, in lists, previews and feeds.

Authors upload pictures through the real /media form (Pillow makes them), choose one in
the editor's cover select and save; readers then see the page, the lists and the feeds
as a browser or a feed reader would. Variants are made by the media area's own job body.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import feedparser
import pytest
from PIL import Image
from sqlalchemy import create_engine, event, select

from pyproject.blog import cover
from pyproject.blog.db import get_database
from pyproject.blog.media import make_variants_now
from pyproject.blog.migrate import downgrade, upgrade
from pyproject.blog.models import Media, Post
from pyproject.lib.testing import TestClient, TestResponse
from tests.blog.conftest import (
    Cast,
    csrf_token,
    edit_post,
    field_error,
    form_of,
    slug_of,
    write_post,
)

BASE = "http://localhost"  # the tests' BASE_URL


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (30, 90, 160)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=80)
    return out.getvalue()


def upload(client: TestClient, data: bytes, *, name: str = "harbour.jpg", alt: str = "") -> Media:
    """Upload one picture through /media; give its row."""
    values = {"csrf_token": csrf_token(client, "/media"), "alt": alt}
    answer = client.post(
        "/media",
        data=values,
        files={"file": (name, data, "image/jpeg")},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    return media_row(client, answer.json["files"][0]["url"])


def media_row(client: TestClient, url: str) -> Media:
    sha = url.split("/")[-2]
    with get_database(client.app).read() as db:
        return db.scalar(select(Media).where(Media.sha256 == sha))


def post_with_cover(cast: Cast, media: Media, **fields: str) -> str:
    return slug_of(write_post(cast.author, cover=str(media.id), **fields))


def meta(page: TestResponse, prop: str) -> str | None:
    tag = page.html.select_one(f'meta[property="{prop}"], meta[name="{prop}"]')
    return tag["content"] if tag is not None else None


def blogposting(page: TestResponse) -> dict[str, Any]:
    (script,) = page.html.select('script[type="application/ld+json"]')
    return json.loads(script.string)


@pytest.fixture
def picture(cast: Cast) -> Media:
    return upload(cast.author, jpeg(1200, 800), alt="A harbour at dawn")


# --- choosing ------------------------------------------------------------------------------


def test_the_editor_offers_none_and_only_the_authors_own_pictures(cast: Cast) -> None:
    mine = upload(cast.author, jpeg(640, 480), name="mine.jpg", alt="Mine")
    theirs = upload(cast.other, jpeg(640, 480, (1, 2, 3)), name="theirs.jpg", alt="Theirs")

    options = cast.author.get("/posts/new").html.select("#f-cover option")

    assert (options[0]["value"], options[0].get_text()) == ("", "None")
    values = [o["value"] for o in options]
    assert str(mine.id) in values and str(theirs.id) not in values
    assert "mine.jpg (640 × 480): Mine" in [o.get_text() for o in options]


def test_a_hostile_file_name_and_alt_text_are_shown_as_text_in_the_select(cast: Cast) -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    picture = upload(cast.author, jpeg(320, 240), name=f"{hostile}.jpg", alt=hostile)
    slug = post_with_cover(cast, picture)

    editor = cast.author.get("/posts/new")
    page = cast.anonymous.get(f"/posts/{slug}")

    assert hostile in editor.html.select_one(f'#f-cover option[value="{picture.id}"]').get_text()
    assert editor.html.select('img[onerror], img[src="x"]') == []
    assert page.html.select('img[onerror], img[src="x"]') == []
    assert meta(page, "og:image:alt") == hostile


def test_a_saved_cover_is_selected_when_the_post_is_edited_again(
    cast: Cast, picture: Media
) -> None:
    slug = post_with_cover(cast, picture)

    selected = cast.author.get(f"/posts/{slug}/edit").html.select_one("#f-cover option[selected]")

    assert selected is not None and selected["value"] == str(picture.id)


def test_a_picture_without_alt_text_is_warned_about_when_chosen(cast: Cast) -> None:
    bare = upload(cast.author, jpeg(300, 200), name="bare.jpg")
    slug = post_with_cover(cast, bare)

    page = cast.author.get(f"/posts/{slug}/edit")

    assert "has no alt text" in page.html.select_one("#f-cover").parent.get_text()


def test_another_authors_picture_is_refused_beside_the_field_with_the_text_kept(
    cast: Cast,
) -> None:
    theirs = upload(cast.other, jpeg(640, 480, (9, 9, 9)), alt="Theirs")

    answer = write_post(cast.author, title="Kept title", cover=str(theirs.id))

    assert answer.status_code == 422
    assert "own pictures" in field_error(answer, "cover")
    assert answer.html.select_one("#f-title")["value"] == "Kept title"
    with get_database(cast.app).read() as db:
        assert db.scalar(select(Post.id)) is None


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "١", "9" * 20, "1 OR 1=1", "999999"])
def test_a_cover_that_is_no_picture_of_the_library_is_422(cast: Cast, value: str) -> None:
    answer = write_post(cast.author, title="Odd cover", cover=value)

    assert answer.status_code == 422
    assert field_error(answer, "cover")


def test_an_admin_editing_a_post_chooses_from_its_authors_library(
    cast: Cast, picture: Media
) -> None:
    slug = slug_of(write_post(cast.author, title="By alice"))
    admins_own = upload(cast.admin, jpeg(500, 500, (5, 5, 5)), alt="Admin's")

    page = cast.admin.get(f"/posts/{slug}/edit")
    values = [o["value"] for o in page.html.select("#f-cover option")]
    assert str(picture.id) in values and str(admins_own.id) not in values

    assert edit_post(cast.admin, slug, cover=str(picture.id)).status_code == 303
    assert meta(cast.anonymous.get(f"/posts/{slug}"), "og:image")


def test_choosing_none_takes_the_cover_away(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)

    assert edit_post(cast.author, slug, cover="").status_code == 303

    page = cast.anonymous.get(f"/posts/{slug}")
    assert page.html.select_one(".post-cover") is None
    assert meta(page, "og:image") is None
    assert meta(page, "twitter:card") == "summary"
    assert "image" not in blogposting(page)


def test_saving_from_the_conflict_page_keeps_the_chosen_cover(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)
    stale = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    assert edit_post(cast.author, slug, body="Changed in another tab.").status_code == 303
    stale.update(body="My own version.")

    conflict = cast.author.post(f"/posts/{slug}/edit", data=stale)

    assert conflict.status_code == 409
    values = conflict.form_values(f'form[action="/posts/{slug}/edit"]')
    assert values["cover"] == str(picture.id)
    assert cast.author.post(f"/posts/{slug}/edit", data=values).status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").html.select_one(".post-cover img") is not None


def test_a_save_without_the_cover_field_leaves_the_cover_alone(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)
    values = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    del values["cover"]  # an editor page opened before covers existed
    values["body"] = "New words."

    assert cast.author.post(f"/posts/{slug}/edit", data=values).status_code == 303

    page = cast.anonymous.get(f"/posts/{slug}")
    assert "New words." in page.text
    assert page.html.select_one(".post-cover img") is not None


# --- showing -------------------------------------------------------------------------------


def test_the_post_shows_its_cover_sized_with_its_alt_text(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)

    img = cast.anonymous.get(f"/posts/{slug}").html.select_one(".post-cover img")

    assert img["src"] == f"/media/files/{picture.sha256}/original.jpg"
    assert (img["width"], img["height"], img["alt"]) == ("1200", "800", "A harbour at dawn")
    assert cast.anonymous.get(img["src"]).status_code == 200


def test_link_previews_and_json_ld_carry_the_cover(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)

    page = cast.anonymous.get(f"/posts/{slug}")

    url = f"{BASE}/media/files/{picture.sha256}/original.jpg"
    assert meta(page, "og:image") == url
    assert (meta(page, "og:image:width"), meta(page, "og:image:height")) == ("1200", "800")
    assert meta(page, "og:image:alt") == "A harbour at dawn"
    assert meta(page, "twitter:card") == "summary_large_image"
    assert meta(page, "twitter:image") == url
    image = blogposting(page)["image"]
    assert image == {"@type": "ImageObject", "url": url, "width": 1200, "height": 800}


def test_once_variants_exist_previews_use_the_1600_copy_and_the_cover_lists_sources(
    cast: Cast,
) -> None:
    big = upload(cast.author, jpeg(2400, 1500), alt="Wide")
    make_variants_now(cast.app, big.id)
    slug = post_with_cover(cast, big)

    page = cast.anonymous.get(f"/posts/{slug}")

    assert meta(page, "og:image") == f"{BASE}/media/files/{big.sha256}/1600.jpg"
    assert (meta(page, "og:image:width"), meta(page, "og:image:height")) == ("1600", "1000")
    types = [s["type"] for s in page.html.select(".post-cover picture source")]
    assert types == ["image/avif", "image/webp"]
    img = page.html.select_one(".post-cover picture img")
    assert "480.jpg 480w" in img["srcset"] and img["sizes"]
    thumbnail = cast.anonymous.get("/").html.select_one(".post-item-cover")
    assert thumbnail["src"] == f"/media/files/{big.sha256}/480.webp"
    assert (thumbnail["width"], thumbnail["height"]) == ("480", "300")


def test_variants_made_after_the_post_was_cached_reach_its_cover(cast: Cast) -> None:
    big = upload(cast.author, jpeg(2000, 1000), alt="Late sizes")
    slug = post_with_cover(cast, big)
    first = cast.anonymous.get(f"/posts/{slug}")
    assert first.html.select(".post-cover picture source") == []

    make_variants_now(cast.app, big.id)

    again = cast.anonymous.get(f"/posts/{slug}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200
    assert len(again.html.select(".post-cover picture source")) == 2
    assert meta(again, "og:image").endswith("/1600.jpg")


@pytest.mark.parametrize("path", ["/", "/posts", "/tags/harbours", "/authors/alice"])
def test_lists_show_the_cover_as_a_sized_thumbnail(cast: Cast, picture: Media, path: str) -> None:
    post_with_cover(cast, picture, title="With cover", tags="harbours")
    slug_of(write_post(cast.author, title="Without cover", tags="harbours"))

    page = cast.anonymous.get(path)

    items = {
        item.select_one(".post-item-title").get_text(strip=True): item
        for item in page.html.select(".post-item")
    }
    thumbnail = items["With cover"].select_one("img.post-item-cover")
    assert thumbnail is not None, path
    assert thumbnail["src"] == f"/media/files/{picture.sha256}/original.jpg"
    assert (thumbnail["width"], thumbnail["height"]) == ("480", "320")
    assert thumbnail["alt"] == ""  # the title beside it names the post
    assert thumbnail["loading"] == "lazy"
    assert items["Without cover"].select_one("img") is None


def test_feeds_carry_the_cover_as_an_enclosure_with_its_length_and_type(
    cast: Cast, picture: Media
) -> None:
    post_with_cover(cast, picture, title="With cover")
    url = f"{BASE}/media/files/{picture.sha256}/original.jpg"
    served = cast.anonymous.get(url.removeprefix(BASE))

    for feed in ("/feed.atom", "/feed.rss", "/authors/alice/feed.atom"):
        parsed = feedparser.parse(cast.anonymous.get(feed).data)
        assert not parsed.bozo, (feed, parsed.bozo_exception)
        (entry,) = parsed.entries
        (enclosure,) = entry.enclosures
        assert enclosure.href == url, feed
        assert enclosure.type == "image/jpeg"
        assert int(enclosure.length) == picture.bytes == len(served.data)


def test_a_changed_alt_text_reaches_the_cached_post_page(cast: Cast, picture: Media) -> None:
    slug = post_with_cover(cast, picture)
    first = cast.anonymous.get(f"/posts/{slug}")
    values = form_of(cast.author.get("/media"), f'form[action="/media/{picture.id}/alt"]')
    values["alt"] = "Boats at first light"

    assert cast.author.post(f"/media/{picture.id}/alt", data=values).status_code == 303

    again = cast.anonymous.get(f"/posts/{slug}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200
    assert meta(again, "og:image:alt") == "Boats at first light"
    assert again.html.select_one(".post-cover img")["alt"] == "Boats at first light"


def test_a_cover_cannot_be_deleted_from_the_library_while_a_post_shows_it(
    cast: Cast, picture: Media
) -> None:
    slug = post_with_cover(cast, picture, title="Harbour post")
    values = form_of(cast.author.get("/media"), f'form[action="/media/{picture.id}/delete"]')

    refused = cast.author.post(f"/media/{picture.id}/delete", data=values)

    assert refused.status_code == 409
    assert "Harbour post" in refused.html.select_one("#delete-refused").get_text()
    assert cast.anonymous.get(f"/posts/{slug}").html.select_one(".post-cover img") is not None


def test_the_library_names_the_post_a_cover_is_used_by(cast: Cast, picture: Media) -> None:
    post_with_cover(cast, picture, title="Harbour post")

    item = cast.author.get("/media").html.select_one(f"#media-{picture.id}")

    assert "Harbour post" in item.get_text()


def test_a_cover_is_saved_listed_and_enclosed_on_sqlite_and_postgresql(any_db_cast: Cast) -> None:
    picture = upload(any_db_cast.author, jpeg(900, 600), alt="Both databases")
    slug = post_with_cover(any_db_cast, picture, title="On any database")

    home = any_db_cast.anonymous.get("/")
    post = any_db_cast.anonymous.get(f"/posts/{slug}")
    (entry,) = feedparser.parse(any_db_cast.anonymous.get("/feed.atom").data).entries

    assert home.html.select_one(".post-item-cover") is not None
    assert meta(post, "og:image:alt") == "Both databases"
    assert entry.enclosures[0].href.endswith(f"/{picture.sha256}/original.jpg")


@pytest.mark.parametrize("path", ["/", "/posts", "/feed.atom", "/feed.rss"])
def test_a_list_or_feed_loads_all_its_covers_in_one_query(cast: Cast, path: str) -> None:
    for number in range(4):
        picture = upload(cast.author, jpeg(400, 300, (number, 40, 80)), alt=f"Picture {number}")
        post_with_cover(cast, picture, title=f"Covered {number}")
    seen: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = get_database(cast.app).engine
    cast.app.page_cache.clear()
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        page = cast.anonymous.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)

    assert page.status_code == 200
    assert page.text.count("/original.jpg") >= 4
    assert len([s for s in seen if "FROM media" in s]) == 1, seen


# --- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/media/files/ab/original.jpg", "https://blog.example/media/files/ab/original.jpg"),
        ("https://cdn.example/ab/original.jpg", "https://cdn.example/ab/original.jpg"),
    ],
)
def test_absolute_gives_paths_the_sites_address(url: str, expected: str) -> None:
    assert cover.absolute(url, "https://blog.example/") == expected


@pytest.mark.parametrize(
    ("size", "to_width", "expected"),
    [((1200, 800), 480, (480, 320)), ((300, 200), 480, (300, 200)), ((5000, 1), 480, (480, 1))],
)
def test_scaled_keeps_the_shape_and_never_enlarges(
    size: tuple[int, int], to_width: int, expected: tuple[int, int]
) -> None:
    assert cover.scaled(*size, to_width) == expected


# --- the migration -------------------------------------------------------------------------


def test_migration_0014_keeps_the_search_triggers_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "migrate.sqlite3"
    engine = create_engine(f"sqlite:///{path}")

    def triggers() -> list[str]:
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            return sorted(name for (name,) in rows)

    upgrade(engine, "0013")
    before = triggers()
    upgrade(engine, "0014")
    at_0014 = triggers()
    downgrade(engine, "0013")

    assert before == at_0014 == triggers()
    assert len(before) == 3
    engine.dispose()
