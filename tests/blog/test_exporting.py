"""Tests for pyproject/blog/exporting.py: what the zip holds, that it is the same bytes for the
same site, one author's export, and the streamed downloads at /admin/export and /account/export.

(The round trip, export -> import -> export, is in tests/blog/test_importing.py.)
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from blog.conftest import Cast, csrf_token, edit_post, set_post, slug_of, write_post
from blog.test_importing import png
from blog.test_media import uploaded
from pyproject.blog.db import get_database
from pyproject.blog.exporting import FIXED_TIME, dump_yaml
from pyproject.blog.models import Media
from pyproject.cli import main


def front_matter(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture
def site(cast: Cast) -> Cast:
    picture = uploaded(cast, png(), name="red.png", alt="A red square")
    with get_database(cast.app).read() as db:
        media_id = db.scalar(select(Media.id))
    slug = slug_of(
        write_post(
            cast.author,
            title="Café: at dawn",
            body=f"Morning.\n\n{picture['markdown']}\n",
            tags="python, Café",
            cover=str(media_id),
        )
    )
    edit_post(cast.author, slug, slug="dawn")
    slug_of(write_post(cast.author, title="Draft", body="d", status="draft"))
    later = slug_of(write_post(cast.author, title="Later", body="Soon."))
    set_post(cast.app, later, published_at=datetime.now(UTC) + timedelta(days=2))
    slug_of(write_post(cast.other, title="Bob's", body="Bob."))
    return cast


def export(cast: Cast, path: Path, *args: str) -> zipfile.ZipFile:
    assert main(cast.app, ["export", str(path), *args]) == 0
    return zipfile.ZipFile(path)


def test_the_zip_holds_posts_media_authors_and_revisions(site: Cast, tmp_path: Path) -> None:
    z = export(site, tmp_path / "site.zip", "--with-revisions")
    names = z.namelist()
    assert names == sorted(names)
    assert {"site.json", "media.json", "posts/dawn.md", "posts/draft.md", "posts/later.md"} <= set(
        names
    )
    assert "revisions/dawn/1.md" in names and "revisions/dawn/2.md" in names
    front, body = front_matter(z.read("posts/dawn.md").decode())
    assert front["title"] == "Café: at dawn" and front["author"] == "alice"
    assert front["status"] == "published" and front["earlier_slugs"] == ["cafe-at-dawn"]
    assert front["tags"] == ["Café", "python"]
    assert front["published_at"].endswith("Z")
    (media_name,) = [n for n in names if n.startswith("media/")]
    assert f"](../{media_name})" in body  # our picture as a relative link
    assert front["cover"] == media_name
    assert z.read(media_name).startswith(b"\x89PNG")
    assert json.loads(z.read("media.json"))[0]["alt"] == "A red square"
    assert front_matter(z.read("posts/draft.md").decode())[0]["status"] == "draft"
    later, _ = front_matter(z.read("posts/later.md").decode())
    assert later["status"] == "scheduled" and "publish_at" in later
    site_json = json.loads(z.read("site.json"))
    assert [a["username"] for a in site_json["authors"]] == ["admin", "alice", "bob"]
    assert set(site_json["authors"][0]) == {"username", "name", "email", "role"}
    whole = b"".join(z.read(n) for n in names)
    assert b"argon2" not in whole and b"password" not in whole
    assert all(info.date_time == FIXED_TIME for info in z.infolist())


def test_the_same_site_gives_the_same_bytes(site: Cast, tmp_path: Path) -> None:
    export(site, tmp_path / "a.zip", "--with-revisions")
    export(site, tmp_path / "b.zip", "--with-revisions")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_one_authors_export(site: Cast, tmp_path: Path) -> None:
    z = export(site, tmp_path / "alice.zip", "--author", "alice")
    posts = [n for n in z.namelist() if n.startswith("posts/")]
    assert posts == ["posts/dawn.md", "posts/draft.md", "posts/later.md"]
    assert [a["username"] for a in json.loads(z.read("site.json"))["authors"]] == ["alice"]
    assert not any(n.startswith("revisions/") for n in z.namelist())


def test_an_unknown_author_is_an_error(site: Cast, tmp_path: Path, capsys) -> None:
    assert main(site.app, ["export", str(tmp_path / "x.zip"), "--author", "nobody"]) == 2
    assert "no author named 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


def test_yaml_is_stable_and_safe() -> None:
    text = dump_yaml({"b": "x: y", "a": ["---", "é"]})
    assert text == "a:\n- '---'\n- é\nb: 'x: y'\n"
    assert yaml.safe_load(text) == {"b": "x: y", "a": ["---", "é"]}


def download(client, path: str, **form: str):
    return client.post(path, data={"csrf_token": csrf_token(client, path), **form})


def test_admin_export_streams_the_same_zip(site: Cast, tmp_path: Path) -> None:
    export(site, tmp_path / "cli.zip", "--with-revisions")
    answer = download(site.admin, "/admin/export", with_revisions="on")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="site-export-')
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.data == (tmp_path / "cli.zip").read_bytes()


def test_an_author_exports_only_their_own(site: Cast) -> None:
    page = site.author.get("/account/export")
    assert page.status_code == 200 and page.html.select_one('form[action="/account/export"]')
    answer = download(site.author, "/account/export")
    assert answer.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(answer.data))
    assert "posts/bobs.md" not in z.namelist() and "posts/dawn.md" in z.namelist()
    assert json.loads(z.read("site.json"))["authors"][0]["username"] == "alice"


def test_who_may_export(site: Cast) -> None:
    assert site.author.get("/admin/export").status_code == 403
    assert download(site.author, "/admin/export").status_code == 403
    assert site.anonymous.get("/account/export").status_code == 303
    assert site.admin.get("/admin/export").status_code == 200
