"""Micropub: creating from forms and JSON, photos, updates, delete/undelete, queries, media."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from blog.conftest import Cast, get_post, make_cast, write_post
from blog.test_cover import jpeg
from blog.test_tokens import bearer, make_token
from pyproject.blog.db import get_database
from pyproject.blog.models import Media, Post
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app

BASE = "http://localhost"


class Pictures:
    """A loopback web server that serves bytes by path (other people's photos)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.url = ""

    def add(self, path: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[path] = (content_type, data)
        return self.url + path


@pytest.fixture
def pictures() -> Iterator[Pictures]:
    served = Pictures()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            content_type, data = served.files.get(self.path, ("text/plain", b""))
            self.send_response(200 if self.path in served.files else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def mp_app(tmp_path: Path) -> Iterator[App]:
    app = build_app(tmp_path, OUTGOING_ALLOW_LOOPBACK=True, OUTGOING_TIMEOUT=2)
    yield app
    get_database(app).dispose()


@pytest.fixture
def mp(mp_app: App) -> Cast:
    return make_cast(mp_app)


@pytest.fixture
def token(mp: Cast) -> str:
    return make_token(mp.author, "Quill", "read", "posts:write", "media:write")


def form_post(client: TestClient, token: str | None, data, **kwargs) -> TestResponse:
    headers = bearer(token) if token else {}
    return client.post("/micropub", data=data, headers=headers, **kwargs)


def json_post(client: TestClient, token: str, body: dict) -> TestResponse:
    return client.post("/micropub", json=body, headers=bearer(token))


def tags_of(app: App, slug: str) -> list[str]:
    with get_database(app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        return sorted(tag.name for tag in post.tags)


def slug_of_location(answer: TestResponse) -> str:
    assert answer.status_code == 201, answer.text
    location = answer.headers["Location"]
    assert location.startswith(f"{BASE}/posts/")
    return location.removeprefix(f"{BASE}/posts/")


def test_every_page_names_the_endpoints(mp: Cast) -> None:
    page = mp.anonymous.get("/")
    assert page.html.select_one('link[rel="micropub"]')["href"] == f"{BASE}/micropub"
    assert page.html.select_one('link[rel="micropub_media"]')["href"] == f"{BASE}/micropub/media"


def test_a_form_encoded_note_is_published(mp: Cast, token: str) -> None:
    answer = form_post(
        mp.anonymous,
        token,
        [("h", "entry"), ("content", "Hello from my *phone*, a short note."),
         ("category[]", "notes"), ("category[]", "phone")],
    )  # fmt: skip
    slug = slug_of_location(answer)
    assert slug == "hello-from-my-phone-a-short-note"  # a note: named by its first words
    post = get_post(mp.app, slug)
    assert post.title == ""
    assert post.status == "published" and post.is_published
    assert tags_of(mp.app, slug) == ["notes", "phone"]
    assert "<em>phone</em>" in post.body_html
    assert answer.json["ignored"] == []
    assert mp.anonymous.get(f"/posts/{slug}").status_code == 200


def test_a_json_article_with_html_slug_and_draft(mp: Cast, token: str) -> None:
    answer = json_post(
        mp.anonymous,
        token,
        {
            "type": ["h-entry"],
            "properties": {
                "name": ["An article"],
                "content": [{"html": "<p>Rich <strong>text</strong><script>x()</script></p>"}],
                "mp-slug": ["my-article"],
                "post-status": ["draft"],
                "location": ["geo:1,2"],
                "x-unknown": ["?"],
            },
        },
    )
    assert slug_of_location(answer) == "my-article"
    assert answer.json["ignored"] == ["location", "x-unknown"]
    post = get_post(mp.app, "my-article")
    assert post.status == "draft" and post.title == "An article"
    assert "<strong>text</strong>" in post.body_html and "<script" not in post.body_html
    assert mp.anonymous.get("/posts/my-article").status_code == 404


def test_published_in_the_future_schedules(mp: Cast, token: str) -> None:
    answer = form_post(
        mp.anonymous, token, {"h": "entry", "name": "Later", "content": "x",
                              "published": "2099-05-01T10:00:00Z"}
    )  # fmt: skip
    post = get_post(mp.app, slug_of_location(answer))
    assert post.is_scheduled


def test_a_photo_by_url_is_fetched_into_the_library(
    mp: Cast, token: str, pictures: Pictures
) -> None:
    url = pictures.add("/cat.jpg", jpeg(64, 48))
    answer = json_post(
        mp.anonymous,
        token,
        {"type": ["h-entry"], "properties": {
            "content": ["Look at this"], "photo": [{"value": url, "alt": "A cat"}]}},
    )  # fmt: skip
    post = get_post(mp.app, slug_of_location(answer))
    with get_database(mp.app).read() as db:
        media = db.scalar(select(Media))
    assert media is not None and media.filename == "cat.jpg" and media.owner.username == "alice"
    assert f"![A cat](/media/files/{media.sha256}/original.jpg)" in post.body_md
    assert 'alt="A cat"' in post.body_html
    assert "cat.jpg" in mp.author.get("/media").text


def test_an_uploaded_photo_goes_to_the_library(mp: Cast, token: str) -> None:
    answer = mp.anonymous.post(
        "/micropub",
        data={"h": "entry", "content": "Uploaded"},
        files={"photo": ("up.jpg", jpeg(50, 40), "image/jpeg")},
        headers=bearer(token),
    )
    post = get_post(mp.app, slug_of_location(answer))
    with get_database(mp.app).read() as db:
        media = db.scalar(select(Media))
    assert media.sha256 in post.body_md


@pytest.mark.parametrize(
    "address",
    ["http://10.0.0.1/x.jpg", "http://192.168.1.2/x.jpg", "http://169.254.169.254/latest",
     "http://[::ffff:10.0.0.1]/x.jpg", "file:///etc/passwd", "gopher://127.0.0.1/"],
)  # fmt: skip
def test_a_photo_at_a_private_address_is_refused(mp: Cast, token: str, address: str) -> None:
    answer = form_post(mp.anonymous, token, {"h": "entry", "content": "x", "photo": address})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_request"
    assert "could not be fetched" in answer.json["error_description"]
    with get_database(mp.app).read() as db:
        assert db.scalar(select(Media.id)) is None


def test_a_photo_that_is_not_a_picture_stores_nothing(
    mp: Cast, token: str, pictures: Pictures
) -> None:
    url = pictures.add("/page.jpg", b"<html>not a picture</html>", "text/html")
    answer = form_post(mp.anonymous, token, {"h": "entry", "content": "x", "photo": url})
    assert answer.status_code == 400
    assert get_post(mp.app, "x") is None


def test_update_replace_add_and_delete(mp: Cast, token: str) -> None:
    slug = slug_of_location(
        form_post(mp.anonymous, token, [("h", "entry"), ("name", "Title"), ("content", "Body"),
                                        ("category", "a"), ("category", "b")])
    )  # fmt: skip
    url = f"{BASE}/posts/{slug}"
    answer = json_post(
        mp.anonymous,
        token,
        {"action": "update", "url": url,
         "replace": {"content": ["New body"]}, "add": {"category": ["c"], "syndication": ["x"]},
         "delete": {"category": ["a"]}},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json["ignored"] == ["syndication"]
    post = get_post(mp.app, slug)
    assert post.body_md == "New body" and post.title == "Title"
    assert tags_of(mp.app, slug) == ["b", "c"]
    answer = json_post(
        mp.anonymous, token, {"action": "update", "url": url, "delete": ["category"]}
    )
    assert answer.status_code == 200
    assert tags_of(mp.app, slug) == []
    renamed = json_post(
        mp.anonymous, token, {"action": "update", "url": url, "replace": {"mp-slug": ["renamed"]}}
    )
    assert renamed.status_code == 201 and renamed.headers["Location"] == f"{BASE}/posts/renamed"
    assert mp.anonymous.get(f"/posts/{slug}").status_code == 301


def test_update_refused_as_the_editor_refuses(mp: Cast, token: str) -> None:
    slug = slug_of_location(form_post(mp.anonymous, token, {"name": "T", "content": "B"}))
    answer = json_post(
        mp.anonymous,
        token,
        {"action": "update", "url": f"{BASE}/posts/{slug}", "replace": {"name": ["x" * 201]}},
    )
    assert answer.status_code == 400
    assert "title" in answer.json["fields"]
    assert get_post(mp.app, slug).title == "T"


def test_delete_and_undelete(mp: Cast, token: str) -> None:
    slug = slug_of_location(form_post(mp.anonymous, token, {"name": "Gone soon", "content": "x"}))
    url = f"{BASE}/posts/{slug}"
    deleted = form_post(mp.anonymous, token, {"action": "delete", "url": url})
    assert deleted.status_code == 204
    assert mp.anonymous.get(f"/posts/{slug}").status_code == 410
    restored = json_post(mp.anonymous, token, {"action": "undelete", "url": url})
    assert restored.status_code == 204
    assert mp.anonymous.get(f"/posts/{slug}").status_code == 200


def test_queries(mp: Cast, token: str) -> None:
    config = mp.anonymous.get("/micropub?q=config", headers=bearer(token))
    assert config.status_code == 200
    assert config.json["media-endpoint"] == f"{BASE}/micropub/media"
    assert config.json["syndicate-to"] == []
    syndicate = mp.anonymous.get("/micropub?q=syndicate-to", headers=bearer(token))
    assert syndicate.json == {"syndicate-to": []}
    slug = slug_of_location(
        form_post(mp.anonymous, token, {"name": "Src", "content": "Text", "category": "t"})
    )
    source = mp.anonymous.get(
        "/micropub", query={"q": "source", "url": f"{BASE}/posts/{slug}"}, headers=bearer(token)
    )
    assert source.json["type"] == ["h-entry"]
    properties = source.json["properties"]
    assert properties["name"] == ["Src"] and properties["content"] == ["Text"]
    assert properties["category"] == ["t"]
    some = mp.anonymous.get(
        "/micropub",
        query=[("q", "source"), ("url", f"{BASE}/posts/{slug}"), ("properties[]", "name")],
        headers=bearer(token),
    )
    assert some.json == {"properties": {"name": ["Src"]}}
    unknown = mp.anonymous.get("/micropub?q=everything", headers=bearer(token))
    assert unknown.status_code == 400 and unknown.json["error"] == "invalid_request"


def test_the_media_endpoint(mp: Cast, token: str) -> None:
    answer = mp.anonymous.post(
        "/micropub/media",
        files={"file": ("m.jpg", jpeg(30, 30), "image/jpeg")},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    location = answer.headers["Location"]
    assert location.startswith(f"{BASE}/media/") and location.endswith("/original.jpg")
    # a post may then show it by URL, without fetching anything
    slug = slug_of_location(
        json_post(mp.anonymous, token, {"type": ["h-entry"],
                                        "properties": {"content": ["Pic"], "photo": [location]}})
    )  # fmt: skip
    assert location in get_post(mp.app, slug).body_md
    empty = mp.anonymous.post("/micropub/media", data={"x": "y"}, headers=bearer(token))
    assert empty.status_code == 400 and empty.json["error"] == "invalid_request"


def test_without_a_token_401_and_wrong_scope_403(mp: Cast) -> None:
    answer = form_post(mp.anonymous, None, {"h": "entry", "content": "x"})
    assert answer.status_code == 401 and answer.json["error"] == "unauthorized"
    signed_in = mp.author.post("/micropub", data={"h": "entry", "content": "x"})
    assert signed_in.status_code == 401  # a session cookie is not a token
    reader = make_token(mp.author, "Reader", "read")
    refused = form_post(mp.anonymous, reader, {"h": "entry", "content": "x"})
    assert refused.status_code == 403 and refused.json["error"] == "insufficient_scope"
    media_only = make_token(mp.author, "Media", "media:write")
    assert mp.anonymous.get("/micropub?q=config", headers=bearer(media_only)).status_code == 200
    assert (
        mp.anonymous.post(
            "/micropub/media",
            files={"file": ("m.jpg", jpeg(30, 30), "image/jpeg")},
            headers=bearer(reader),
        ).status_code
        == 403
    )
    assert get_post(mp.app, "x") is None


def test_another_author_s_post_cannot_be_changed(mp: Cast, token: str) -> None:
    write_post(mp.other, title="Bob's", slug="bobs")
    url = f"{BASE}/posts/bobs"
    for body in (
        {"action": "update", "url": url, "replace": {"name": ["Mine"]}},
        {"action": "delete", "url": url},
    ):
        answer = json_post(mp.anonymous, token, body)
        assert answer.status_code == 403, answer.text
    source = mp.anonymous.get("/micropub", query={"q": "source", "url": url}, headers=bearer(token))
    assert source.status_code == 403
    assert get_post(mp.app, "bobs").title == "Bob's"
    assert get_post(mp.app, "bobs").deleted_at is None


@pytest.mark.parametrize(
    "body",
    [
        {"type": ["h-event"], "properties": {}},
        {"type": ["h-entry"], "properties": []},
        {"type": ["h-entry"], "properties": {"content": "not a list"}},
        {"type": ["h-entry"], "properties": {"content": [{"nohtml": 1}]}},
        {"type": ["h-entry"], "properties": {"content": ["x"], "photo": [5]}},
        {"type": ["h-entry"], "properties": {"content": ["x"], "post-status": ["live"]}},
        {"type": ["h-entry"], "properties": {"content": ["x"], "published": ["yesterday"]}},
        {"type": ["h-entry"], "properties": {"content": ["x"], "category": [{"a": 1}]}},
        {"type": ["h-entry"], "properties": {}},
        {"action": "update", "url": "http://elsewhere.example/posts/x", "replace": {}},
        {"action": "update", "url": f"{BASE}/posts/nothing-here", "replace": {}},
        {"action": "update", "url": f"{BASE}/about", "replace": {}},
        {"action": "update", "url": 5},
        {"action": "explode", "url": f"{BASE}/posts/x"},
        {"action": "undelete", "url": f"{BASE}/posts/nothing"},
    ],
)
def test_bad_requests_are_400_and_change_nothing(mp: Cast, token: str, body: dict) -> None:
    answer = json_post(mp.anonymous, token, body)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"] == "invalid_request"
    with get_database(mp.app).read() as db:
        assert db.scalar(select(Media.id)) is None
    assert mp.author.get("/drafts").status_code == 200


def test_an_update_sent_as_a_form_is_refused(mp: Cast, token: str) -> None:
    answer = form_post(mp.anonymous, token, {"action": "update", "url": f"{BASE}/posts/x"})
    assert answer.status_code == 400


def test_the_token_is_checked_before_a_large_body_and_lets_a_photo_through(
    make_app, tmp_path: Path
) -> None:
    import io

    from PIL import Image

    app = make_app(MAX_CONTENT_LENGTH=50_000)
    cast = make_cast(app)
    token = make_token(cast.author, "Phone", "posts:write")
    out = io.BytesIO()
    Image.effect_noise((300, 300), 100).convert("RGB").save(out, "JPEG", quality=95)
    photo = out.getvalue()
    assert len(photo) > 50_000
    files = {"photo": ("noise.jpg", photo, "image/jpeg")}
    refused = cast.anonymous.post("/micropub", data={"content": "Big"}, files=files)
    assert refused.status_code == 401  # not read: no token, so the site's own limit holds
    made = cast.anonymous.post(
        "/micropub", data={"content": "Big"}, files=files, headers=bearer(token)
    )
    assert made.status_code == 201, made.text
