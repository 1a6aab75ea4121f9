"""The read-only JSON API: posts, one post, tags and search; its shapes, pages and JSON errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.conftest import (
    AUTHOR,
    Cast,
    create_author,
    csrf_token,
    delete_post,
    edit_post,
    login,
    signup_admin,
    slug_of,
    write_post,
)
from blog.test_cover import jpeg, post_with_cover, upload
from blog.test_search import module_app
from pyproject.blog.db import get_database
from pyproject.blog.media import make_variants_now
from pyproject.blog.models import Post, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

BASE = "http://localhost"
POST_FIELDS = {
    "title", "slug", "url", "author", "published_at", "updated_at", "tags", "summary",
    "reading_minutes", "cover", "html",
}  # fmt: skip


@dataclass
class ApiBlog:
    app: App
    alice: TestClient
    reader: TestClient
    published: list[str] = field(default_factory=list)  # slugs, oldest first
    draft: str = ""
    scheduled: str = ""
    trashed: str = ""


def make_api_blog(app: App) -> ApiBlog:
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    created = create_author(
        admin, AUTHOR.username, password=AUTHOR.password, display_name="Alice Author"
    )
    assert created.status_code == 303
    alice = app.test_client()
    assert login(alice, AUTHOR.username, AUTHOR.password).status_code == 303
    blog = ApiBlog(app, alice, app.test_client())
    for n in range(1, 13):
        tags = ", ".join(
            t for t, every in (("Python", 2), ("Web", 3), ("Zeal", 12)) if n % every == 0
        )
        body = f"## Part {n}\n\nWords about number {n}, with a heron.\n"
        saved = write_post(alice, title=f"Numbered post {n}", body=body, tags=tags)
        blog.published.append(slug_of(saved))
    future = (utcnow() + timedelta(days=1)).astimezone(app.extensions["timezone"])
    hidden = dict(body="A heron in hiding.", tags="Python, Hidden")
    blog.draft = slug_of(write_post(alice, title="Draft heron", status="draft", **hidden))
    blog.scheduled = slug_of(
        write_post(
            alice, title="Scheduled heron", publish_at=future.strftime("%Y-%m-%dT%H:%M"), **hidden
        )
    )
    blog.trashed = slug_of(write_post(alice, title="Trashed heron", **hidden))
    assert delete_post(alice, blog.trashed).status_code == 303
    return blog


@pytest.fixture
def blog(any_db_app: App) -> ApiBlog:
    """Twelve published posts and three hidden ones, on SQLite then PostgreSQL."""
    return make_api_blog(any_db_app)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_blog(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiBlog]:
    """The same blog, shared by the tests that only read it."""
    with module_app(request.param, tmp_path_factory.mktemp("api"), "readers_api") as app:
        yield make_api_blog(app)


def get_json(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url.removeprefix(BASE))
    assert response.status_code == status, (url, response.status, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json"), url
    return response.json


def stored_post(app: App, slug: str) -> Post:
    """Give the post as stored, with its author and tags loaded."""
    with get_database(app).read() as db:
        return db.scalar(select(Post).options(selectinload(Post.tags)).where(Post.slug == slug))


def assert_post_shape(data: dict, app: App) -> None:
    """The API's view of a post is the stored post, with absolute URLs and aware dates."""
    assert set(data) == POST_FIELDS
    post = stored_post(app, data["slug"])
    assert data["title"] == post.title
    assert data["url"] == f"{BASE}/posts/{post.slug}"
    assert data["author"] == {
        "username": post.author.username,
        "name": post.author.name,
        "url": f"{BASE}/authors/{post.author.username}",
    }
    for key in ("published_at", "updated_at"):
        stamp = datetime.fromisoformat(data[key])
        assert stamp.tzinfo is not None
        assert stamp == getattr(post, key)
    assert data["tags"] == sorted(tag.name for tag in post.tags)
    assert data["summary"] == post.summary
    assert data["reading_minutes"] == post.reading_minutes >= 1
    assert data["html"] == post.body_html
    assert data["cover"] is None  # these posts have none (covers: the end of this file)


# --- posts -------------------------------------------------------------------------------


def test_posts_are_listed_newest_first_ten_a_page(shared_blog: ApiBlog) -> None:
    first = get_json(shared_blog.reader, "/api/posts")
    assert first["page"] == 1 and first["previous"] is None
    assert first["next"] == f"{BASE}/api/posts?page=2"
    second = get_json(shared_blog.reader, first["next"])
    assert second["page"] == 2 and second["next"] is None
    assert second["previous"] == f"{BASE}/api/posts"

    slugs = [post["slug"] for post in first["posts"] + second["posts"]]
    assert [len(first["posts"]), len(second["posts"])] == [10, 2]
    assert slugs == shared_blog.published[::-1]
    for post in first["posts"] + second["posts"]:
        assert_post_shape(post, shared_blog.app)


def test_one_post_has_the_same_shape_as_in_the_list(shared_blog: ApiBlog) -> None:
    slug = shared_blog.published[5]
    data = get_json(shared_blog.reader, f"/api/posts/{slug}")
    assert set(data) == {"post"}
    assert_post_shape(data["post"], shared_blog.app)
    listed = {p["slug"]: p for p in get_json(shared_blog.reader, "/api/posts")["posts"]}
    assert data["post"] == listed[slug]
    page = shared_blog.reader.get(f"/posts/{slug}")
    assert page.html.select_one(".post-body h2").get_text(strip=True).startswith("Part 6")


def test_tags_count_only_published_posts(shared_blog: ApiBlog) -> None:
    tags = get_json(shared_blog.reader, "/api/tags")["tags"]
    assert tags == [
        {"name": "Python", "slug": "python", "posts": 6, "url": f"{BASE}/tags/python"},
        {"name": "Web", "slug": "web", "posts": 4, "url": f"{BASE}/tags/web"},
        {"name": "Zeal", "slug": "zeal", "posts": 1, "url": f"{BASE}/tags/zeal"},
    ]


def test_search_results_are_posts_with_a_snippet(shared_blog: ApiBlog) -> None:
    data = get_json(shared_blog.reader, "/api/search?q=heron")
    assert data["query"] == "heron"
    assert data["page"] == 1 and data["previous"] is None
    assert data["next"] == f"{BASE}/api/search?page=2&q=heron"
    results = data["results"]
    assert len(results) == 10
    for result in results:
        assert set(result) == (POST_FIELDS - {"html"}) | {"snippet"}
        assert "<mark>" in result["snippet"].lower()
    rest = get_json(shared_blog.reader, data["next"])
    assert rest["previous"] == f"{BASE}/api/search?q=heron"
    found = {r["slug"] for r in results + rest["results"]}
    assert found == set(shared_blog.published)

    empty = get_json(shared_blog.reader, "/api/search?q=")
    assert empty["results"] == [] and empty["next"] is None


def test_an_earlier_slug_redirects_to_the_posts_new_address(blog: ApiBlog) -> None:
    old = blog.published[0]
    assert edit_post(blog.alice, old, slug="renamed-post").status_code == 303
    response = blog.reader.get(f"/api/posts/{old}")
    assert response.status_code == 301
    assert response.location == "/api/posts/renamed-post"
    assert get_json(blog.reader, response.location)["post"]["slug"] == "renamed-post"


# --- errors ------------------------------------------------------------------------------


def assert_json_error(response: TestResponse, status: int, what: str) -> None:
    assert response.status_code == status, (what, response.status)
    assert response.headers["Content-Type"].startswith("application/json"), what
    body = response.json
    assert set(body) == {"error"}, what
    assert body["error"]["status"] == status, what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what


def test_hidden_and_missing_posts_are_json_errors(shared_blog: ApiBlog) -> None:
    cases = {
        "/api/posts/no-such-post": 404,
        f"/api/posts/{shared_blog.draft}": 404,
        f"/api/posts/{shared_blog.scheduled}": 404,
        f"/api/posts/{shared_blog.trashed}": 410,
        "/api/posts?page=3": 404,  # past the end
    }
    for path, status in cases.items():
        assert_json_error(shared_blog.reader.get(path), status, path)
    # The API is for readers: an author sees their own draft as anyone else does.
    assert_json_error(shared_blog.alice.get(f"/api/posts/{shared_blog.draft}"), 404, "own draft")


@pytest.mark.parametrize(
    "path",
    ["/api/posts?page=0", "/api/posts?page=-1", "/api/posts?page=abc", "/api/posts?page=01",
     "/api/posts?page=1.5", "/api/posts?page=", "/api/posts?page=9999999", "/api/posts?page=2",
     "/api/search?q=a&page=0", "/api/search?q=a&page=x", "/api/posts/a/b", "/api/nothing-here",
     "/api/posts/%00", "/api/posts/..%2F..%2Fetc"],
)  # fmt: skip
def test_bad_pages_and_addresses_are_json_404s(shared_cast: Cast, path: str) -> None:
    assert_json_error(shared_cast.anonymous.get(path), 404, path)


def test_a_wrong_method_is_a_json_405_with_allow(shared_cast: Cast) -> None:
    response = shared_cast.anonymous.post("/api/tags", data={})  # (posts take POST: #20)
    assert_json_error(response, 405, "POST /api/tags")
    assert "GET" in response.headers["Allow"]


def test_json_is_safe_to_embed_in_html(shared_cast: Cast) -> None:
    title = "</script><script>alert(1)</script> & <!-- x -->"
    slug = slug_of(write_post(shared_cast.author, title=title, body="<b>bold</b> & more"))
    response = shared_cast.anonymous.get(f"/api/posts/{slug}")
    assert "<" not in response.text and ">" not in response.text
    assert json.loads(response.text)["post"]["title"] == title


def test_api_answers_revalidation_with_304_until_a_post_changes(app: App) -> None:
    writer = app.test_client()
    assert signup_admin(writer).status_code == 303
    slug = slug_of(write_post(writer, title="Versioned", body="First words.", tags="Api"))
    reader = app.test_client()
    paths = ["/api/posts", f"/api/posts/{slug}", "/api/tags", "/api/search?q=words"]
    etags = {}
    for path in paths:
        etags[path] = reader.get(path).headers["ETag"]
        again = reader.get(path, headers={"If-None-Match": etags[path]})
        assert again.status_code == 304 and again.data == b"", path
    assert edit_post(writer, slug, body="Second words.").status_code == 303
    for path in paths:
        fresh = reader.get(path, headers={"If-None-Match": etags[path]})
        assert fresh.status_code == 200, path
        assert fresh.headers["ETag"] != etags[path], path


# --- covers (#15) --------------------------------------------------------------------------


def test_a_posts_cover_is_its_link_preview_copy_with_size_and_alt(any_db_cast: Cast) -> None:
    cast = any_db_cast
    picture = upload(cast.author, jpeg(1200, 800), alt='A harbour at "dawn" <b>')
    slug = post_with_cover(cast, picture, title="Harbour", body="Boats.", tags="Sea")
    plain = slug_of(write_post(cast.author, title="No cover", body="Words.", tags="Sea"))
    expected = {
        "url": f"{BASE}/media/files/{picture.sha256}/original.jpg",
        "width": 1200,
        "height": 800,
        "alt": 'A harbour at "dawn" <b>',
    }

    assert get_json(cast.anonymous, f"/api/posts/{slug}")["post"]["cover"] == expected
    assert get_json(cast.anonymous, f"/api/posts/{plain}")["post"]["cover"] is None
    listed = {p["slug"]: p["cover"] for p in get_json(cast.anonymous, "/api/posts")["posts"]}
    assert listed == {slug: expected, plain: None}
    found = get_json(cast.anonymous, "/api/search?q=boats")["results"]
    assert [(r["slug"], r["cover"]) for r in found] == [(slug, expected)]


def test_once_variants_exist_the_cover_is_the_1600_copy(cast: Cast) -> None:
    big = upload(cast.author, jpeg(2400, 1500), alt="Wide")
    slug = post_with_cover(cast, big, title="Wide", body="Far.", tags="Sea")
    before = get_json(cast.anonymous, f"/api/posts/{slug}")["post"]["cover"]
    assert (before["width"], before["height"]) == (2400, 1500)

    make_variants_now(cast.app, big.id)

    after = get_json(cast.anonymous, f"/api/posts/{slug}")["post"]["cover"]
    assert after == {
        "url": f"{BASE}/media/files/{big.sha256}/1600.jpg",
        "width": 1600,
        "height": 1000,
        "alt": "Wide",
    }


def test_an_alt_text_change_reaches_the_cached_api_answer(cast: Cast) -> None:
    picture = upload(cast.author, jpeg(640, 480), alt="Before")
    slug = post_with_cover(cast, picture, title="Changing", body="Words.", tags="Sea")
    first = cast.anonymous.get(f"/api/posts/{slug}")
    assert first.json["post"]["cover"]["alt"] == "Before"
    form = {"csrf_token": csrf_token(cast.author, "/media"), "alt": "After"}
    assert cast.author.post(f"/media/{picture.id}/alt", data=form).status_code == 303

    again = cast.anonymous.get(
        f"/api/posts/{slug}", headers={"If-None-Match": first.headers["ETag"]}
    )

    assert again.status_code == 200
    assert again.json["post"]["cover"]["alt"] == "After"
