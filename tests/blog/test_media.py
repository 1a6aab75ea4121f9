"""Tests for pyproject/blog/media.py: uploads, the library, variants and pictures in posts.

Authors upload through the real form (multipart, CSRF token from the page); pictures are
made with Pillow (tests/blog/test_images.py); files land in the test's own media folder
and are fetched back through the app's media mount, as a browser would.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from blog.conftest import (
    AUTHOR,
    OTHER,
    Cast,
    csrf_token,
    edit_post,
    field_error,
    slug_of,
    write_post,
)
from blog.test_images import (
    HTML,
    LATITUDE,
    SECRET,
    SVG,
    animated_gif,
    cmyk_jpeg,
    gps_jpeg,
    palette_png,
    plain_jpeg,
    png16,
    png_declaring,
    polyglot,
    truncated_jpeg,
)
from pyproject.blog import jobs, media
from pyproject.blog.db import get_database
from pyproject.blog.models import JobRecord, Media, MediaOwner, User
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

JSON = {"Accept": "application/json"}


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Give a multipart body with several files under the one field name `file`."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for filename, content in files:
        out.write(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload(
    client: TestClient,
    files: list[tuple[str, bytes]],
    *,
    alt: str = "",
    as_json: bool = False,
    **fields: str,
) -> TestResponse:
    """Send the upload form of /media with these files, as the page's form would."""
    values = {"csrf_token": csrf_token(client, "/media"), "alt": alt, **fields}
    body, content_type = multipart(values, files)
    return client.post(
        "/media", data=body, content_type=content_type, headers=JSON if as_json else None
    )


def rows(app: App) -> list[Media]:
    with get_database(app).read() as db:
        return list(db.scalars(select(Media).order_by(Media.id)))


def stored_files(app: App) -> list[Path]:
    root = Path(app.config["INSTANCE_PATH"]) / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def served(client: TestClient, url: str) -> TestResponse:
    answer = client.get(url)
    assert answer.status_code == 200, url
    return answer


def variants_of(app: App, media_id: int) -> list[dict[str, Any]]:
    with get_database(app).read() as db:
        return json.loads(db.get(Media, media_id).variants)


def uploaded(
    cast: Cast, data: bytes, name: str = "photo.jpg", alt: str = "A photo", who: str = "author"
):
    answer = upload(cast.client(who), [(name, data)], alt=alt, as_json=True)
    assert answer.status_code == 200, answer.text
    return answer.json["files"][0]


# --- uploading ---------------------------------------------------------------------------


def test_gps_never_reaches_a_served_byte_and_the_photo_is_upright(cast: Cast) -> None:
    picture = uploaded(cast, gps_jpeg())
    assert (picture["width"], picture["height"]) == (200, 300)
    assert picture["markdown"] == f"![A photo]({picture['url']})"
    original = served(cast.anonymous, picture["url"])
    assert original.headers["Content-Type"] == "image/jpeg"
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in original.headers["Cache-Control"] and original.headers["ETag"]
    (row,) = rows(cast.app)
    assert media.make_variants_now(cast.app, row.id) == 0
    urls = [picture["url"]] + [
        media.get_store(cast.app).url(f"{row.sha256}/{v['w']}.{v['ext']}")
        for v in variants_of(cast.app, row.id)
    ]
    assert len(urls) == 1 + 3  # 200 px wide: one width, three formats
    latitude = b"".join(int(part * 1000).to_bytes(4, "big") for part in LATITUDE)
    for url in urls:
        body = served(cast.anonymous, url).data
        assert SECRET not in body and b"Exif" not in body and latitude not in body
        image = Image.open(io.BytesIO(body))
        assert not image.getexif() and image.size == (200, 300)
    for path in stored_files(cast.app):  # and nothing kept on disk holds it either
        assert SECRET not in path.read_bytes()


def test_the_same_bytes_twice_are_one_picture_with_one_url(cast: Cast) -> None:
    first = uploaded(cast, plain_jpeg())
    second = uploaded(cast, plain_jpeg(), name="again.jpg")
    assert first["url"] == second["url"]
    assert len(rows(cast.app)) == 1
    with get_database(cast.app).read() as db:
        assert len(list(db.scalars(select(JobRecord)))) == 1  # variants asked for once


@pytest.mark.parametrize(
    ("make", "content_type", "mode"),
    [
        (cmyk_jpeg, "image/jpeg", "RGB"),
        (png16, "image/png", "RGB"),
        (palette_png, "image/png", "RGBA"),
    ],
    ids=["cmyk", "png16", "palette"],
)
def test_colour_modes_become_srgb(cast: Cast, make, content_type: str, mode: str) -> None:
    picture = uploaded(cast, make(), name="x.img")
    answer = served(cast.anonymous, picture["url"])
    assert answer.headers["Content-Type"] == content_type
    assert Image.open(io.BytesIO(answer.data)).mode == mode


def test_an_animated_gif_is_served_animated(cast: Cast) -> None:
    picture = uploaded(cast, animated_gif(), name="dance.gif")
    answer = served(cast.anonymous, picture["url"])
    assert answer.headers["Content-Type"] == "image/gif"
    assert Image.open(io.BytesIO(answer.data)).n_frames == 4
    (row,) = rows(cast.app)
    media.make_variants_now(cast.app, row.id)
    assert {v["ext"] for v in variants_of(cast.app, row.id)} == {"webp", "gif"}


def test_a_polyglot_is_served_as_a_clean_jpeg_with_nosniff(cast: Cast) -> None:
    picture = uploaded(cast, polyglot(), name="cat.html.jpg")
    answer = served(cast.anonymous, picture["url"])
    assert answer.headers["Content-Type"] == "image/jpeg"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert HTML not in answer.data and b"<script" not in answer.data


def test_a_path_in_the_file_name_is_only_a_label(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg(), name="../../etc/passwd.jpg")
    (row,) = rows(cast.app)
    assert row.filename == "passwd.jpg"
    assert picture["url"] == f"/media/files/{row.sha256}/original.jpg"
    root = (Path(cast.app.config["INSTANCE_PATH"]) / "media").resolve()
    assert all(path.resolve().is_relative_to(root) for path in stored_files(cast.app))
    assert not (Path(cast.app.config["INSTANCE_PATH"]).parent / "etc").exists()


def test_a_file_name_is_shown_escaped(cast: Cast) -> None:
    uploaded(cast, plain_jpeg(), name="<img src=x onerror=alert(1)>.jpg")
    page = cast.author.get("/media")
    assert "<img src=x" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in page.text


BAD_FILES = [
    ("truncated.jpg", truncated_jpeg(), 422, "damaged or cut short"),
    ("bomb.png", png_declaring(30_000, 30_000), 422, "megapixels"),
    ("drawing.svg", SVG, 422, "can carry script"),
    ("empty.jpg", b"", 422, "empty"),
    ("notes.jpg", b"these are words, not a picture", 422, "not a picture"),
]


@pytest.mark.parametrize(
    ("name", "data", "status", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_a_bad_file_is_refused_naming_it_and_nothing_is_stored(
    cast: Cast, name: str, data: bytes, status: int, words: str
) -> None:
    page = upload(cast.author, [(name, data)], alt="typed alt")
    assert page.status_code == status
    problems = page.html.select_one("#upload-problems").get_text()
    assert name in problems and words in problems
    assert page.html.select_one("#f-alt")["value"] == "typed alt"
    answer = upload(cast.author, [(name, data)], as_json=True)
    assert answer.status_code == status
    assert name in answer.json["error"]["message"]
    assert rows(cast.app) == [] and stored_files(cast.app) == []


def test_a_21_mb_file_is_413_naming_it(cast: Cast) -> None:
    data = b"\xff\xd8\xff" + os.urandom(21_000_000)
    answer = upload(cast.author, [("huge.jpg", data)], as_json=True)
    assert answer.status_code == 413
    assert "huge.jpg" in answer.json["error"]["message"]
    assert "20 MB" in answer.json["error"]["message"]
    assert rows(cast.app) == [] and stored_files(cast.app) == []


def test_one_bad_file_among_good_ones_stores_nothing(cast: Cast) -> None:
    files = [("a.jpg", plain_jpeg()), ("b.svg", SVG), ("c.png", palette_png())]
    answer = upload(cast.author, files, as_json=True)
    assert answer.status_code == 422 and "b.svg" in answer.json["error"]["message"]
    assert rows(cast.app) == [] and stored_files(cast.app) == []


def test_more_than_20_files_is_refused(cast: Cast) -> None:
    files = [(f"{n}.jpg", plain_jpeg(20, 20, (n, n, n))) for n in range(21)]
    answer = upload(cast.author, files, as_json=True)
    assert answer.status_code == 413 and "at most 20" in answer.json["error"]["message"]
    assert rows(cast.app) == []


def test_several_files_at_once(cast: Cast) -> None:
    files = [(f"{n}.jpg", plain_jpeg(30, 20, (n * 9, 0, 0))) for n in range(3)]
    answer = upload(cast.author, files, alt="Red squares", as_json=True)
    assert answer.status_code == 200
    assert len(answer.json["files"]) == 3 and len(rows(cast.app)) == 3


def test_no_file_is_422(cast: Cast) -> None:
    answer = upload(cast.author, [], as_json=True)
    assert answer.status_code == 422


def test_the_plain_form_redirects_to_the_library_or_to_a_safe_next(cast: Cast) -> None:
    answer = upload(cast.author, [("a.jpg", plain_jpeg())])
    assert answer.status_code == 303 and answer.location == "/media"
    answer = upload(cast.author, [("b.jpg", palette_png())], next="/posts/new")
    assert answer.location == "/posts/new"
    answer = upload(cast.author, [("c.jpg", cmyk_jpeg())], next="https://evil.example/")
    assert answer.location == "/media"


# --- who may do what ---------------------------------------------------------------------


def test_strangers_cannot_upload_or_see_the_library(cast: Cast) -> None:
    assert cast.anonymous.get("/media").status_code == 303
    body, content_type = multipart({}, [("a.jpg", plain_jpeg())])
    answer = cast.anonymous.post("/media", data=body, content_type=content_type)
    assert answer.status_code in (303, 403)
    assert rows(cast.app) == []


def test_an_upload_without_the_csrf_token_is_refused(cast: Cast) -> None:
    body, content_type = multipart({}, [("a.jpg", plain_jpeg())])
    answer = cast.author.post("/media", data=body, content_type=content_type)
    assert answer.status_code == 403
    assert rows(cast.app) == []


def test_an_author_sees_and_changes_only_their_own_and_an_admin_all(cast: Cast) -> None:
    mine = uploaded(cast, plain_jpeg(), alt="Alice photo")
    uploaded(cast, palette_png(), name="bob.png", alt="Bob flag", who="other")
    alice_page, bob_page, admin_page = (
        cast.client(who).get("/media") for who in ("author", "other", "admin")
    )
    assert "Alice photo" in alice_page.text and "Bob flag" not in alice_page.text
    assert "Bob flag" in bob_page.text and "Alice photo" not in bob_page.text
    assert "Alice photo" in admin_page.text and "Bob flag" in admin_page.text
    alice_id = next(m.id for m in rows(cast.app) if m.alt == "Alice photo")
    token = csrf_token(cast.other, "/media")
    assert (
        cast.other.post(
            f"/media/{alice_id}/alt", data={"csrf_token": token, "alt": "x"}
        ).status_code
        == 404
    )
    assert (
        cast.other.post(f"/media/{alice_id}/delete", data={"csrf_token": token}).status_code == 404
    )
    assert served(cast.anonymous, mine["url"])
    token = csrf_token(cast.admin, "/media")
    assert (
        cast.admin.post(f"/media/{alice_id}/delete", data={"csrf_token": token}).status_code == 303
    )
    assert cast.anonymous.get(mine["url"]).status_code == 404


# --- the library -------------------------------------------------------------------------


def test_alt_text_is_edited_and_a_missing_one_warned_about(cast: Cast) -> None:
    uploaded(cast, plain_jpeg(), alt="")
    (row,) = rows(cast.app)
    page = cast.author.get("/media")
    assert "No alt text" in page.html.select_one(f"#media-{row.id}").get_text()
    token = csrf_token(cast.author, "/media")
    answer = cast.author.post(f"/media/{row.id}/alt", data={"csrf_token": token, "alt": "A field"})
    assert answer.status_code == 303
    assert rows(cast.app)[0].alt == "A field"
    assert "No alt text" not in cast.author.get("/media").text
    cast.author.post(
        f"/media/{row.id}/alt", data={"csrf_token": token, "alt": "", "decorative": "on"}
    )
    assert rows(cast.app)[0].decorative
    assert "No alt text" not in cast.author.get("/media").text
    too_long = "x" * 501
    page = cast.author.post(f"/media/{row.id}/alt", data={"csrf_token": token, "alt": too_long})
    assert page.status_code == 422
    assert page.html.select_one(f"#alt-{row.id}")["value"] == too_long


def test_a_used_picture_cannot_be_deleted_and_an_unused_one_goes_with_its_files(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg())
    (row,) = rows(cast.app)
    media.make_variants_now(cast.app, row.id)
    slug = slug_of(
        write_post(cast.author, title="Field day", body=f"Look:\n\n{picture['markdown']}")
    )
    page = cast.author.get("/media")
    assert "Field day" in page.html.select_one(f"#media-{row.id}").get_text()
    token = csrf_token(cast.author, "/media")
    refused = cast.author.post(f"/media/{row.id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "Field day" in refused.html.select_one("#delete-refused").get_text()
    assert len(rows(cast.app)) == 1 and served(cast.anonymous, picture["url"])
    edit_post(cast.author, slug, body="No picture any more.")
    assert (
        cast.author.post(f"/media/{row.id}/delete", data={"csrf_token": token}).status_code == 303
    )
    assert rows(cast.app) == [] and stored_files(cast.app) == []
    assert cast.anonymous.get(picture["url"]).status_code == 404


# --- pictures in posts -------------------------------------------------------------------


def test_a_post_shows_a_sized_img_then_a_picture_once_variants_exist(cast: Cast) -> None:
    first = uploaded(cast, plain_jpeg(1200, 800), alt="A field")
    second = uploaded(cast, palette_png(), name="p.png", alt="A flag")
    body = f"Hello.\n\n{first['markdown']}\n\n{second['markdown']}\n\n![Away](https://example.org/a.png)"
    slug = slug_of(write_post(cast.author, title="Pictures", body=body))
    page = cast.anonymous.get(f"/posts/{slug}")
    etag = page.headers["ETag"]
    imgs = page.html.select(".post-body img")
    assert [img.get("width") for img in imgs] == ["1200", "40", None]
    assert [img.get("height") for img in imgs] == ["800", "30", None]
    assert [img.get("loading") for img in imgs] == [None, "lazy", "lazy"]
    assert not page.html.select(".post-body picture")
    field_id = next(m.id for m in rows(cast.app) if m.alt == "A field")
    assert media.make_variants_now(cast.app, field_id) == 1
    page = cast.anonymous.get(f"/posts/{slug}", headers={"If-None-Match": etag})
    assert page.status_code == 200 and page.headers["ETag"] != etag
    (picture,) = page.html.select(".post-body picture")
    types = [source["type"] for source in picture.select("source")]
    assert types == ["image/avif", "image/webp"]
    assert "960.avif 960w" in picture.select_one("source")["srcset"]
    img = picture.select_one("img")
    assert img["src"] == first["url"] and img["width"] == "1200" and img["height"] == "800"
    assert img["alt"] == "A field" and img["decoding"] == "async" and "sizes" in img.attrs
    assert "960.jpg 960w" in img["srcset"]
    for url in [s.split()[0] for s in img["srcset"].split(", ")]:
        served(cast.anonymous, url)
    away = page.html.select(".post-body img")[-1]
    assert away["src"] == "https://example.org/a.png" and away.parent.name != "picture"


def test_rerender_picks_up_variants(cast: Cast) -> None:
    from pyproject.blog.commands import rerender

    picture = uploaded(cast, plain_jpeg(1000, 500))
    slug = slug_of(write_post(cast.author, title="Later", body=picture["markdown"]))
    (row,) = rows(cast.app)
    store = media.get_store(cast.app)
    for variant in media.images.make_variants(store.get(row.original_name)):
        store.put(f"{row.sha256}/{variant.width}.{variant.ext}", variant.data, variant.content_type)
    with get_database(cast.app).write() as db:
        db.get(Media, row.id).variants = json.dumps(
            [{"w": 480, "h": 240, "ext": e} for e in ("avif", "webp", "jpg")]
        )
    assert not cast.anonymous.get(f"/posts/{slug}").html.select(".post-body picture")

    class Args:
        all = True

    assert rerender(cast.app, Args()) == 0
    assert cast.anonymous.get(f"/posts/{slug}").html.select(".post-body picture")


# --- the real worker ---------------------------------------------------------------------


@pytest.fixture
def worker(cast: Cast) -> Iterator[jobs.Worker]:
    running = jobs.Worker(cast.app, threads=1)
    running.start()
    yield running
    running.stop()


def test_the_worker_makes_the_variants_and_the_post_shows_them(cast: Cast, worker) -> None:
    picture = uploaded(cast, plain_jpeg(1000, 600))
    slug = slug_of(write_post(cast.author, title="Worked", body=picture["markdown"]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cast.anonymous.get(f"/posts/{slug}").html.select(".post-body picture"):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the variants job did not make the post show a <picture>")
    (row,) = rows(cast.app)
    assert {v["w"] for v in variants_of(cast.app, row.id)} == {480, 960, 1000}


# --- the editor ----------------------------------------------------------------------------


def test_the_editor_has_an_upload_form_that_works_without_javascript(cast: Cast) -> None:
    page = cast.author.get("/posts/new")
    form = page.html.select_one("form#editor-upload")
    assert form["method"] == "post" and form["action"] == "/media"
    assert form["enctype"] == "multipart/form-data"
    field = form.select_one('input[type="file"]')
    assert field["name"] == "file" and field["accept"] == "image/*" and field.has_attr("multiple")
    assert form.select_one('input[name="alt"]') is not None
    assert form.select_one('input[name="csrf_token"]')["value"]
    assert page.html.select_one('script[src^="/static/js/media.js"]') is not None
    values = {i["name"]: i.get("value", "") for i in form.select("input[type=hidden]")}
    body, content_type = multipart({**values, "alt": "Sent plainly"}, [("p.jpg", plain_jpeg())])
    answer = cast.author.post("/media", data=body, content_type=content_type)
    assert answer.status_code == 303 and answer.location == "/media"
    library = cast.author.get("/media")
    assert "![Sent plainly](/media/files/" in library.text


def test_upload_library_and_refused_delete_on_every_database(any_db_cast: Cast) -> None:
    cast = any_db_cast
    picture = uploaded(cast, plain_jpeg(600, 400), alt="Both databases")
    assert uploaded(cast, plain_jpeg(600, 400))["url"] == picture["url"]
    (row,) = rows(cast.app)
    slug_of(write_post(cast.author, title="On any database", body=picture["markdown"]))
    assert media.make_variants_now(cast.app, row.id) == 1
    page = cast.author.get("/media")
    assert "On any database" in page.html.select_one(f"#media-{row.id}").get_text()
    token = csrf_token(cast.author, "/media")
    assert (
        cast.author.post(f"/media/{row.id}/delete", data={"csrf_token": token}).status_code == 409
    )


def test_the_library_names_another_authors_post_only_once_it_is_public(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg())
    (row,) = rows(cast.app)
    write_post(cast.other, title="Bob secret draft", body=picture["markdown"], status="draft")
    item = cast.author.get("/media").html.select_one(f"#media-{row.id}")
    assert "Bob secret draft" not in item.get_text()
    assert "a post of another author that is not public" in item.get_text()
    assert "Bob secret draft" in cast.admin.get("/media").text
    write_post(cast.other, title="Bob in public", body=picture["markdown"])
    item = cast.author.get("/media").html.select_one(f"#media-{row.id}")
    assert item.select_one('a[href="/posts/bob-in-public"]').get_text() == "Bob in public"


def test_the_variants_job_is_idempotent_and_stops_for_a_deleted_picture(cast: Cast) -> None:
    uploaded(cast, plain_jpeg(1000, 500))
    (row,) = rows(cast.app)
    media.make_variants_now(cast.app, row.id)
    first = stored_files(cast.app)
    recorded = variants_of(cast.app, row.id)
    media.make_variants_now(cast.app, row.id)
    assert stored_files(cast.app) == first and variants_of(cast.app, row.id) == recorded
    assert len(first) == 1 + 3 * 3  # the original, and 480, 960 and 1000 in three formats
    token = csrf_token(cast.author, "/media")
    assert (
        cast.author.post(f"/media/{row.id}/delete", data={"csrf_token": token}).status_code == 303
    )
    assert media.make_variants_now(cast.app, row.id) == 0
    assert stored_files(cast.app) == []


def test_only_a_signed_in_upload_may_be_larger_than_the_site_body_limit(cast: Cast) -> None:
    body, content_type = multipart(
        {"csrf_token": csrf_token(cast.anonymous)}, [("big.jpg", b"\xff" * 17_000_000)]
    )
    assert cast.anonymous.post("/media", data=body, content_type=content_type).status_code == 413
    token = csrf_token(cast.author, "/media")
    body, content_type = multipart({"csrf_token": token}, [("big.jpg", b"\xff" * 17_000_000)])
    answer = cast.author.post("/media", data=body, content_type=content_type, headers=JSON)
    assert answer.status_code == 422  # read, and refused for what it is: not a picture
    assert "big.jpg" in answer.json["error"]["message"]


# --- one picture, several authors' libraries -------------------------------------------------


def owner_rows(app: App) -> list[tuple[int, int, str, str]]:
    """Give (picture id, user id, label, alt) of every library row."""
    with get_database(app).read() as db:
        found = db.execute(
            select(
                MediaOwner.media_id, MediaOwner.user_id, MediaOwner.filename, MediaOwner.alt
            ).order_by(MediaOwner.media_id, MediaOwner.user_id)
        )
        return [tuple(row) for row in found]


def user_id(app: App, username: str) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(User.id).where(User.username == username))


def delete_as(client: TestClient, media_id: int) -> TestResponse:
    return client.post(
        f"/media/{media_id}/delete", data={"csrf_token": csrf_token(client, "/media")}
    )


def test_the_same_bytes_from_a_second_author_are_in_both_libraries_with_their_own_alt(
    cast: Cast,
) -> None:
    alices = uploaded(cast, plain_jpeg(), name="alice.jpg", alt="Alice's field")
    bobs = uploaded(cast, plain_jpeg(), name="bob.jpg", alt="Bob's meadow", who="other")

    assert bobs["url"] == alices["url"]
    assert bobs["markdown"] == f"![Bob's meadow]({bobs['url']})"
    (row,) = rows(cast.app)
    alice, bob = user_id(cast.app, AUTHOR.username), user_id(cast.app, OTHER.username)
    assert owner_rows(cast.app) == [
        (row.id, alice, "alice.jpg", "Alice's field"),
        (row.id, bob, "bob.jpg", "Bob's meadow"),
    ]
    for client, label, alt, hidden in (
        (cast.author, "alice.jpg", "Alice's field", "Bob's meadow"),
        (cast.other, "bob.jpg", "Bob's meadow", "Alice's field"),
    ):
        item = client.get("/media").html.select_one(f"#media-{row.id}")
        assert item is not None, label
        assert item.select_one(".media-name").get_text() == label
        assert item.select_one(f"#alt-{row.id}")["value"] == alt
        assert hidden not in item.get_text()
        assert item.select_one("button.danger").get_text().startswith("Remove")

    token = csrf_token(cast.other, "/media")
    answer = cast.other.post(f"/media/{row.id}/alt", data={"csrf_token": token, "alt": "Mine"})
    assert answer.status_code == 303
    assert [r[3] for r in owner_rows(cast.app)] == ["Alice's field", "Mine"]
    assert rows(cast.app)[0].alt == "Alice's field"  # the first uploader's, untouched


def test_each_author_may_choose_the_shared_picture_as_a_cover_with_their_alt(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg(640, 480), alt="Alice's words")
    uploaded(cast, plain_jpeg(640, 480), alt="Bob's words", who="other")
    (row,) = rows(cast.app)
    bob_slug = slug_of(write_post(cast.other, title="Bob's cover", cover=str(row.id)))
    alice_slug = slug_of(write_post(cast.author, title="Alice's cover", cover=str(row.id)))

    for slug, alt in ((bob_slug, "Bob's words"), (alice_slug, "Alice's words")):
        page = cast.anonymous.get(f"/posts/{slug}")
        assert page.html.select_one('meta[property="og:image:alt"]')["content"] == alt
        assert cast.anonymous.get(f"/api/posts/{slug}").json["post"]["cover"]["alt"] == alt
    assert picture["url"] in cast.anonymous.get(f"/posts/{bob_slug}").text


def test_removing_a_shared_picture_keeps_it_and_its_files_for_the_other_author(
    any_db_cast: Cast,
) -> None:
    cast = any_db_cast
    picture = uploaded(cast, plain_jpeg(), name="alice.jpg", alt="Alice's field")
    uploaded(cast, plain_jpeg(), name="bob.jpg", alt="Bob's meadow", who="other")
    (row,) = rows(cast.app)
    media.make_variants_now(cast.app, row.id)
    files = stored_files(cast.app)
    bob = user_id(cast.app, OTHER.username)

    assert delete_as(cast.author, row.id).status_code == 303  # the first uploader leaves

    assert cast.author.get("/media").html.select_one(f"#media-{row.id}") is None
    assert cast.other.get("/media").html.select_one(f"#media-{row.id}") is not None
    assert owner_rows(cast.app) == [(row.id, bob, "bob.jpg", "Bob's meadow")]
    (kept,) = rows(cast.app)
    assert (kept.owner_id, kept.filename, kept.alt) == (bob, "bob.jpg", "Bob's meadow")
    assert stored_files(cast.app) == files and served(cast.anonymous, picture["url"])
    assert delete_as(cast.author, row.id).status_code == 404  # no longer in Alice's library

    assert delete_as(cast.other, row.id).status_code == 303  # the last one: for good
    assert rows(cast.app) == [] and owner_rows(cast.app) == [] and stored_files(cast.app) == []
    assert cast.anonymous.get(picture["url"]).status_code == 404


def test_a_shared_picture_an_authors_post_uses_stays_in_their_library(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg(), alt="Alice's field")
    uploaded(cast, plain_jpeg(), alt="Bob's meadow", who="other")
    (row,) = rows(cast.app)
    slug_of(write_post(cast.author, title="Alice's walk", body=picture["markdown"]))

    refused = delete_as(cast.author, row.id)
    assert refused.status_code == 409
    assert "Alice's walk" in refused.html.select_one("#delete-refused").get_text()
    assert len(owner_rows(cast.app)) == 2

    # Bob's library does not need it for Alice's post: he may let it go, the files stay.
    assert delete_as(cast.other, row.id).status_code == 303
    assert [r[1] for r in owner_rows(cast.app)] == [user_id(cast.app, AUTHOR.username)]
    assert served(cast.anonymous, picture["url"])
    # Alice is now its only holder, and her post uses it: refused as before.
    assert delete_as(cast.author, row.id).status_code == 409


def test_the_second_authors_picture_is_refused_as_a_cover_once_they_removed_it(cast: Cast) -> None:
    uploaded(cast, plain_jpeg(), alt="Alice's field")
    uploaded(cast, plain_jpeg(), alt="Bob's meadow", who="other")
    (row,) = rows(cast.app)
    assert delete_as(cast.other, row.id).status_code == 303

    answer = write_post(cast.other, title="Borrowed", cover=str(row.id))

    assert answer.status_code == 422
    assert "own pictures" in field_error(answer, "cover")


def test_migration_0017_gives_every_picture_its_uploader_as_owner(tmp_path: Path) -> None:
    from sqlalchemy import text

    from pyproject.blog.db import make_engine
    from pyproject.blog.migrate import downgrade, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        upgrade(engine, "0016")
        with engine.begin() as connection:
            # A user as 0016 has them: every column that must hold something gets a value.
            columns = connection.execute(text("PRAGMA table_info(users)")).all()
            values = {"id": 1, "username": "ada", "email": "ada@example.com"}
            for _cid, name, kind, notnull, default, _pk in columns:
                if notnull and default is None and name not in values:
                    text_like = any(word in kind.upper() for word in ("CHAR", "TEXT"))
                    values[name] = (
                        "x"
                        if text_like
                        else ("2026-12-01 10:00:00" if "DATE" in kind.upper() else 0)
                    )
            names = ", ".join(values)
            connection.execute(
                text(f"INSERT INTO users ({names}) VALUES (:{', :'.join(values)})"), values
            )
            connection.execute(
                text(
                    "INSERT INTO media (id, sha256, owner_id, filename, source_format, ext,"
                    " content_type, width, height, bytes, animated, alt, decorative, variants,"
                    " created_at) VALUES (7, :sha, 1, 'field.jpg', 'JPEG', 'jpg', 'image/jpeg',"
                    " 10, 10, 99, 0, 'A field', 0, '[]', '2026-12-01 10:00:00')"
                ),
                {"sha": "a" * 64},
            )
        upgrade(engine)
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT media_id, user_id, filename, alt, decorative FROM media_owners")
            ).all()
        assert [tuple(r) for r in found] == [(7, 1, "field.jpg", "A field", 0)]
        downgrade(engine, "0016")
        with engine.connect() as connection:
            names = {r[0] for r in connection.execute(text("SELECT name FROM sqlite_master"))}
        assert "media_owners" not in names and "media" in names
    finally:
        engine.dispose()


def test_the_editors_preview_shows_the_picture_sized_then_with_its_variants(cast: Cast) -> None:
    picture = uploaded(cast, plain_jpeg(2000, 1000), alt="A wide field")
    (row,) = rows(cast.app)
    values = {
        **cast.author.get("/posts/new").form_values("#post-form"),
        "title": "Previewed",
        "body": f"Before.\n\n{picture['markdown']}",
    }

    def previews() -> list[Any]:
        fragment = cast.author.post(
            "/posts/preview", data=values, headers={"X-Requested-With": "fetch"}
        )
        page = cast.author.post("/posts/preview", data=values)  # without script
        assert fragment.status_code == page.status_code == 200
        return [fragment.html, page.html.select_one("#preview")]

    for shown in previews():
        img = shown.select_one("img")
        assert img["src"] == picture["url"] and img["alt"] == "A wide field"
        assert (img["width"], img["height"]) == ("2000", "1000")
    media.make_variants_now(cast.app, row.id)
    for shown in previews():
        sources = shown.select("picture source")
        assert [s["type"] for s in sources] == ["image/avif", "image/webp"]
        assert f"{row.sha256}/960.avif 960w" in sources[0]["srcset"]
        assert served(cast.anonymous, shown.select_one("picture img")["src"])


def test_a_picture_made_outside_an_upload_is_in_its_uploaders_library(cast: Cast) -> None:
    # As the importer (pyproject/blog/importing.py) makes them: a Media row and nothing more.
    alice = user_id(cast.app, AUTHOR.username)
    with get_database(cast.app).write() as db:
        db.add(
            Media(
                sha256="b" * 64,
                owner_id=alice,
                filename="imported.jpg",
                source_format="JPEG",
                ext="jpg",
                content_type="image/jpeg",
                width=10,
                height=10,
                bytes=99,
                animated=False,
                alt="Imported",
            )
        )
    (row,) = rows(cast.app)
    assert owner_rows(cast.app) == [(row.id, alice, "imported.jpg", "Imported")]
    item = cast.author.get("/media").html.select_one(f"#media-{row.id}")
    assert item is not None and item.select_one(".media-name").get_text() == "imported.jpg"
