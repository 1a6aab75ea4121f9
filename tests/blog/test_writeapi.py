"""The write API: posts and pictures with a bearer token, the editor's rules and save, ETags."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from blog.conftest import Cast, edit_post, get_post, write_post
from blog.test_cover import jpeg
from blog.test_tokens import bearer, make_token
from pyproject.blog.db import get_database
from pyproject.blog.models import Media, Revision
from pyproject.lib.testing import TestClient, TestResponse


def post(client: TestClient, token: str, body: dict) -> TestResponse:
    return client.post("/api/posts", json=body, headers=bearer(token))


def patch(client: TestClient, token: str, slug: str, body: dict, etag: str | None) -> TestResponse:
    headers = bearer(token)
    if etag is not None:
        headers["If-Match"] = etag
    return client.open("PATCH", f"/api/posts/{slug}", json=body, headers=headers)


@pytest.fixture
def token(cast: Cast) -> str:
    return make_token(cast.author, "Writer", "read", "posts:write", "media:write")


def test_create_a_post_and_read_it_back(cast: Cast, token: str) -> None:
    created = post(
        cast.anonymous,
        token,
        {"title": "From the API", "body": "Hello *there*.", "tags": ["api", "Python"]},
    )
    assert created.status_code == 201, created.text
    data = created.json["post"]
    assert data["slug"] == "from-the-api"
    assert data["status"] == "draft"  # as in the editor: a draft unless it says published
    assert data["tags"] == ["api", "Python"]
    assert "<em>there</em>" in data["html"]
    assert created.headers["ETag"] == f'"post-{get_post(cast.app, "from-the-api").id}-1"'
    assert created.headers["Location"] == "http://localhost/api/posts/from-the-api/source"
    source = cast.anonymous.get("/api/posts/from-the-api/source", headers=bearer(token))
    assert source.status_code == 200 and source.json["post"]["body"] == "Hello *there*."
    assert source.headers["ETag"] == created.headers["ETag"]
    again = cast.anonymous.get(
        "/api/posts/from-the-api/source",
        headers={**bearer(token), "If-None-Match": created.headers["ETag"]},
    )
    assert again.status_code == 304
    # a revision was kept, as every editor save keeps one
    with get_database(cast.app).read() as db:
        kinds = list(db.scalars(select(Revision.kind)))
    assert kinds == ["save"]


def test_publish_shows_the_post_to_readers(cast: Cast, token: str) -> None:
    created = post(
        cast.anonymous, token, {"title": "Public", "body": "Out.", "status": "published"}
    )
    assert created.status_code == 201
    assert cast.anonymous.get("/posts/public").status_code == 200
    assert cast.anonymous.get("/api/posts/public").json["post"]["title"] == "Public"


def test_scheduled_with_an_iso_time(cast: Cast, token: str) -> None:
    created = post(
        cast.anonymous,
        token,
        {
            "title": "Later",
            "body": "Soon.",
            "status": "published",
            "publish_at": "2099-01-01T09:00:00+01:00",
        },
    )
    assert created.status_code == 201
    assert created.json["post"]["publish_at"] == "2099-01-01T08:00:00+00:00"
    assert cast.anonymous.get("/posts/later").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "Blank", "body": " \n "}, "body"),
        ({"title": "No body"}, "body"),
        ({"title": "x" * 201, "body": "b"}, "title"),
        ({"title": "t", "body": "b", "slug": "Not a slug!"}, "slug"),
        ({"title": "t", "body": "b", "slug": "new"}, "slug"),
        ({"title": "t", "body": "b", "status": "live"}, "status"),
        ({"title": "t", "body": "b", "tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"title": "t", "body": "b", "tags": "a, b"}, "tags"),
        ({"title": "t", "body": "b", "tags": ["a,b"]}, "tags"),
        ({"title": 5, "body": "b"}, "title"),
        ({"title": "t", "body": "b", "publish_at": "tomorrow"}, "publish_at"),
        ({"title": "t", "body": "b", "publish_at": "2030-01-01T09:00"}, "publish_at"),
        ({"title": "t", "body": "b", "cover": 999}, "cover"),
        ({"title": "t", "body": "b", "cover": True}, "cover"),
        ({"title": "t", "body": "b", "author": "admin"}, "author"),
        ({"title": "t\x00", "body": "b"}, "title"),
    ],
)
def test_invalid_fields_are_422_with_a_message_each(
    cast: Cast, token: str, body: dict, field: str
) -> None:
    answer = post(cast.anonymous, token, body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json["error"]["fields"]
    assert answer.json["error"]["status"] == 422
    with get_database(cast.app).read() as db:
        assert db.scalar(select(Revision.id)) is None


def test_a_taken_slug_is_refused_like_the_editor_refuses_it(cast: Cast, token: str) -> None:
    write_post(cast.other, title="Mine", slug="mine")
    answer = post(cast.anonymous, token, {"title": "t", "body": "b", "slug": "mine"})
    assert answer.status_code == 422
    assert "Another post already uses this slug" in answer.json["error"]["fields"]["slug"]


def test_patch_needs_if_match_and_changes_only_what_it_sends(cast: Cast, token: str) -> None:
    created = post(cast.anonymous, token, {"title": "Old", "body": "Body.", "tags": ["a"]})
    etag = created.headers["ETag"]
    missing = patch(cast.anonymous, token, "old", {"title": "New"}, None)
    assert missing.status_code == 428
    changed = patch(cast.anonymous, token, "old", {"title": "New"}, etag)
    assert changed.status_code == 200, changed.text
    data = changed.json["post"]
    assert (data["title"], data["body"], data["tags"]) == ("New", "Body.", ["a"])
    assert changed.headers["ETag"] != etag
    stale = patch(cast.anonymous, token, "old", {"title": "Lost?"}, etag)
    assert stale.status_code == 412
    assert stale.json["post"]["title"] == "New"  # the current version, to merge with
    assert stale.headers["ETag"] == changed.headers["ETag"]
    assert get_post(cast.app, "old").title == "New"


def test_an_editor_save_makes_the_api_s_etag_stale(cast: Cast, token: str) -> None:
    created = post(
        cast.anonymous, token, {"title": "Shared", "body": "One.", "status": "published"}
    )
    assert edit_post(cast.author, "shared", body="Two, from the editor.").status_code == 303
    stale = patch(cast.anonymous, token, "shared", {"body": "Three."}, created.headers["ETag"])
    assert stale.status_code == 412
    assert stale.json["post"]["body"] == "Two, from the editor."
    assert get_post(cast.app, "shared").body_md == "Two, from the editor."


def test_delete_moves_the_post_to_the_trash(cast: Cast, token: str) -> None:
    post(cast.anonymous, token, {"title": "Bin me", "body": "x", "status": "published"})
    headers = bearer(token)
    assert cast.anonymous.delete("/api/posts/bin-me", headers=headers).status_code == 204
    assert get_post(cast.app, "bin-me").deleted_at is not None
    assert cast.anonymous.get("/posts/bin-me").status_code == 410
    assert "Bin me" in cast.author.get("/trash").text
    assert cast.anonymous.delete("/api/posts/bin-me", headers=headers).status_code == 410


def test_another_author_s_post_is_refused(cast: Cast, token: str) -> None:
    slug = "bobs"
    write_post(cast.other, title="Bob's", slug=slug)
    answer = patch(cast.anonymous, token, slug, {"title": "Mine now"}, "*")
    assert answer.status_code == 403
    assert cast.anonymous.delete(f"/api/posts/{slug}", headers=bearer(token)).status_code == 403
    draft = write_post(cast.other, title="Bob's draft", slug="bobs-draft", status="draft")
    assert draft.status_code == 303
    source = cast.anonymous.get("/api/posts/bobs-draft/source", headers=bearer(token))
    assert source.status_code == 404
    assert get_post(cast.app, slug).title == "Bob's"


def test_an_admin_s_token_may_change_any_post(cast: Cast) -> None:
    write_post(cast.author, title="Alice's", slug="alices")
    admin_token = make_token(cast.admin, "Admin", "posts:write")
    answer = patch(cast.anonymous, admin_token, "alices", {"summary": "Edited by the admin."}, "*")
    assert answer.status_code == 200
    assert get_post(cast.app, "alices").summary == "Edited by the admin."


def test_cookies_are_not_accepted_on_write_endpoints(cast: Cast) -> None:
    answer = cast.author.post("/api/posts", json={"title": "t", "body": "b"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert cast.author.delete("/api/posts/anything").status_code == 401
    assert get_post(cast.app, "t") is None


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Basic YWxpY2U6cGFzcw==", "Bearer", "Bearer a b", "Bearer " + "x" * 300],
)
def test_bad_authorization_is_401(cast: Cast, header: str) -> None:
    answer = cast.anonymous.post(
        "/api/posts", json={"title": "t", "body": "b"}, headers={"Authorization": header}
    )
    assert answer.status_code == 401
    assert answer.json["error"]["status"] == 401


def test_a_token_without_the_scope_is_403(cast: Cast) -> None:
    reader = make_token(cast.author, "Reader", "read")
    answer = post(cast.anonymous, reader, {"title": "t", "body": "b"})
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    media_only = make_token(cast.author, "Pictures", "media:write")
    assert post(cast.anonymous, media_only, {"title": "t", "body": "b"}).status_code == 403
    files = {"file": ("a.jpg", jpeg(40, 30), "image/jpeg")}
    refused = cast.anonymous.post("/api/media", files=files, headers=bearer(reader))
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"title=x", "application/x-www-form-urlencoded", 415),
        (b"\xff\xfe", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    ],
)
def test_malformed_json_is_refused(
    cast: Cast, token: str, data: bytes, content_type: str, status: int
) -> None:
    answer = cast.anonymous.post(
        "/api/posts", data=data, headers={**bearer(token), "Content-Type": content_type}
    )
    assert answer.status_code in (status, 413), answer.text
    assert answer.json["error"]["status"] == answer.status_code


def test_oversized_json_is_413(make_app, tmp_path) -> None:
    from blog.conftest import make_cast

    app = make_app(API_MAX_JSON_BYTES=10_000)
    cast = make_cast(app)
    token = make_token(cast.author)
    answer = post(cast.anonymous, token, {"title": "Big", "body": "x" * 20_000})
    assert answer.status_code == 413
    assert answer.json["error"]["status"] == 413
    assert get_post(app, "big") is None


def test_upload_a_picture_to_the_library(cast: Cast, token: str) -> None:
    files = {"file": ("sunset.jpg", jpeg(40, 30), "image/jpeg")}
    answer = cast.anonymous.post(
        "/api/media", data={"alt": "A red sky"}, files=files, headers=bearer(token)
    )
    assert answer.status_code == 201, answer.text
    [stored] = answer.json["files"]
    assert answer.headers["Location"] == "http://localhost" + stored["url"]
    assert stored["alt"] == "A red sky"
    with get_database(cast.app).read() as db:
        assert db.scalar(select(Media.filename)) == "sunset.jpg"
    assert "sunset.jpg" in cast.author.get("/media").text
    refused = cast.anonymous.post(
        "/api/media",
        files={"file": ("x.jpg", b"not a picture", "image/jpeg")},
        headers=bearer(token),
    )
    assert refused.status_code == 422
    assert json.loads(refused.text)["error"]["status"] == 422


def test_create_patch_and_a_stale_etag_on_every_database(any_db_cast: Cast) -> None:
    """The row lock and the revision check hold on PostgreSQL too (skipped without one)."""
    cast = any_db_cast
    token = make_token(cast.author, "Writer", "posts:write")
    created = post(cast.anonymous, token, {"title": "Both", "body": "One.", "tags": ["x"]})
    assert created.status_code == 201, created.text
    etag = created.headers["ETag"]
    changed = patch(cast.anonymous, token, "both", {"body": "Two.", "status": "published"}, etag)
    assert changed.status_code == 200, changed.text
    stale = patch(cast.anonymous, token, "both", {"body": "Lost?"}, etag)
    assert stale.status_code == 412
    assert get_post(cast.app, "both").body_md == "Two."
    assert cast.anonymous.delete("/api/posts/both", headers=bearer(token)).status_code == 204


def test_a_write_to_an_earlier_slug_is_sent_on_with_308(cast: Cast, token: str) -> None:
    created = post(cast.anonymous, token, {"title": "First", "body": "x", "status": "published"})
    renamed = patch(cast.anonymous, token, "first", {"slug": "second"}, created.headers["ETag"])
    assert renamed.status_code == 200
    moved = patch(cast.anonymous, token, "first", {"title": "Again"}, renamed.headers["ETag"])
    assert moved.status_code == 308
    assert moved.headers["Location"].endswith("/api/posts/second")
    assert get_post(cast.app, "second").title == "First"
