"""Ghost import (#16): the JSON of Settings -> Export read into posts, pages, tags, authors
and feature images, and refused with the file and place named when it is broken."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyproject.blog import ghost
from pyproject.blog.importing import Bundle, ImportFailed, Source, read_source


def _png() -> bytes:
    """Give a small real PNG (what WordPress keeps in uploads/)."""
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (16, 12), (40, 90, 160)).save(out, "PNG")
    return out.getvalue()


PNG = _png()

MOBILEDOC_MARKDOWN = json.dumps(
    {
        "version": "0.3.1",
        "atoms": [],
        "markups": [],
        "cards": [["markdown", {"markdown": "Written in *Ghost 1*."}]],
        "sections": [[10, 0]],
    }
)


def ghost_post(number: int, **fields) -> dict:
    row = {
        "id": f"5f00000000000000000000{number:02d}",
        "uuid": f"00000000-0000-4000-8000-0000000000{number:02d}",
        "title": f"Post {number}",
        "slug": f"post-{number}",
        "mobiledoc": None,
        "lexical": '{"root":{"children":[]}}',
        "html": f"<p>Body {number}.</p>",
        "comment_id": str(number),
        "plaintext": f"Body {number}.",
        "feature_image": None,
        "featured": 0,
        "type": "post",
        "status": "published",
        "locale": None,
        "visibility": "public",
        "email_recipient_filter": "all",
        "created_at": "2021-03-01T09:00:00.000Z",
        "updated_at": "2021-03-02T09:00:00.000Z",
        "published_at": "2021-03-01T10:00:00.000Z",
        "custom_excerpt": None,
        "codeinjection_head": None,
        "codeinjection_foot": None,
        "custom_template": None,
        "canonical_url": None,
        "newsletter_id": None,
    }
    row.update(fields)
    return row


def sample_export() -> dict:
    posts = [
        ghost_post(
            1,
            title="Hello from Ghost",
            slug="hello-from-ghost",
            html=(
                '<p>A <a href="__GHOST_URL__/post-2/">link</a> and a picture:</p>'
                '<figure class="kg-card kg-image-card"><img src="__GHOST_URL__/content/images/'
                'size/w600/2021/03/harbour.png" class="kg-image" alt="Harbour" loading="lazy">'
                "</figure><p>&lt;script&gt;alert(1)&lt;/script&gt;</p><script>alert(2)</script>"
                "<!--kg-card-begin: html--><p>raw card</p><!--kg-card-end: html-->"
            ),
            feature_image="__GHOST_URL__/content/images/2021/03/harbour.png",
            custom_excerpt="Moving day.",
        ),
        ghost_post(2, title="A draft", slug="a-draft", status="draft", published_at=None),
        ghost_post(
            3,
            title="Later",
            slug="later",
            status="scheduled",
            published_at="2031-01-01T08:00:00.000Z",
        ),
        ghost_post(4, title="About", slug="about", type="page"),
        ghost_post(
            5,
            title="Old style",
            slug="old-style",
            html=None,
            lexical=None,
            mobiledoc=MOBILEDOC_MARKDOWN,
        ),
        ghost_post(6, title="Newsletter", slug="newsletter", status="sent"),
        ghost_post(7, title="Lost", slug="lost", html=None, plaintext="Only words."),
        ghost_post(
            8, title="Remote", slug="remote", feature_image="https://images.example.org/u/photo.jpg"
        ),
    ]
    return {
        "db": [
            {
                "meta": {"exported_on": 1619000000000, "version": "5.82.0"},
                "data": {
                    "posts": posts,
                    "posts_meta": [
                        {
                            "id": "m1",
                            "post_id": posts[0]["id"],
                            "feature_image_alt": "The harbour at dawn",
                        }
                    ],
                    "tags": [
                        {"id": "t1", "name": "Travel", "slug": "travel", "visibility": "public"},
                        {
                            "id": "t2",
                            "name": "#import",
                            "slug": "hash-import",
                            "visibility": "internal",
                        },
                        {
                            "id": "t3",
                            "name": "Harbours",
                            "slug": "harbours",
                            "visibility": "public",
                        },
                    ],
                    "posts_tags": [
                        {"id": "pt1", "post_id": posts[0]["id"], "tag_id": "t3", "sort_order": 1},
                        {"id": "pt2", "post_id": posts[0]["id"], "tag_id": "t1", "sort_order": 0},
                        {"id": "pt3", "post_id": posts[0]["id"], "tag_id": "t2", "sort_order": 2},
                    ],
                    "users": [
                        {
                            "id": "1",
                            "name": "Gia Ghost",
                            "slug": "gia",
                            "email": "gia@example.org",
                            "password": "$2a$10$hash",
                            "status": "active",
                        },
                        {
                            "id": "2",
                            "name": "Sam Second",
                            "slug": "sam",
                            "email": "sam@example.org",
                        },
                    ],
                    "posts_authors": [
                        {
                            "id": "pa1",
                            "post_id": p["id"],
                            "author_id": "2" if n == 2 else "1",
                            "sort_order": 0,
                        }
                        for n, p in enumerate(posts, 1)
                    ],
                    "settings": [{"key": "title", "value": "Gia's Ghost"}],
                },
            }
        ]
    }


def write_export(tmp_path: Path, *, images: bool = True, document=None, text=None) -> Path:
    path = tmp_path / "my-ghost-site.ghost.2021-04-21.json"
    if text is None:
        text = json.dumps(document if document is not None else sample_export(), indent=1)
    path.write_text(text, encoding="utf-8")
    if images:
        folder = tmp_path / "content" / "images" / "2021" / "03"
        folder.mkdir(parents=True)
        (folder / "harbour.png").write_bytes(PNG)
    return path


def by_slug(bundle: Bundle) -> dict:
    return {post.slug: post for post in bundle.posts}


def test_a_ghost_export_is_recognised_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "backup.txt"
    path.write_text(json.dumps(sample_export()), encoding="utf-8")
    assert read_source(path).format == "ghost"


def test_posts_pages_statuses_and_dates(tmp_path: Path) -> None:
    posts = by_slug(read_source(write_export(tmp_path)))
    hello = posts["hello-from-ghost"]
    assert (hello.title, hello.status, hello.kind) == ("Hello from Ghost", "published", "post")
    assert hello.published_at == datetime(2021, 3, 1, 10, 0, tzinfo=UTC)
    assert hello.updated_at == datetime(2021, 3, 2, 9, 0, tzinfo=UTC)
    assert hello.summary == "Moving day."
    assert hello.old_paths == ["/hello-from-ghost/"]
    assert (posts["a-draft"].status, posts["a-draft"].published_at) == ("draft", None)
    assert posts["later"].status == "scheduled"
    assert posts["later"].published_at == datetime(2031, 1, 1, 8, 0, tzinfo=UTC)
    assert posts["about"].kind == "page"
    assert posts["newsletter"].status == "draft"


def test_tags_in_order_without_internal_ones(tmp_path: Path) -> None:
    bundle = read_source(write_export(tmp_path))
    assert by_slug(bundle)["hello-from-ghost"].tags == ["Travel", "Harbours"]
    assert any("internal (#) tags" in w for w in bundle.warnings)


def test_authors_without_their_passwords(tmp_path: Path) -> None:
    bundle = read_source(write_export(tmp_path))
    assert [(a.username, a.email, a.display_name) for a in bundle.authors] == [
        ("gia", "gia@example.org", "Gia Ghost"),
        ("sam", "sam@example.org", "Sam Second"),
    ]
    posts = by_slug(bundle)
    assert (posts["hello-from-ghost"].author, posts["a-draft"].author) == ("gia", "sam")
    assert "hash" not in repr(bundle.authors)


def test_html_becomes_markdown_and_no_script_survives(tmp_path: Path) -> None:
    body = by_slug(read_source(write_export(tmp_path)))["hello-from-ghost"].body_md
    assert "A [link](/post-2/) and a picture:" in body
    assert "![Harbour](/content/images/2021/03/harbour.png)" in body  # the sized copy's original
    assert "<script" not in body and "alert(2)" not in body
    assert "&lt;script>alert(1)&lt;/script>" in body
    assert "raw card" in body and "kg-card" not in body


def test_feature_images_are_read_from_content_images_beside_the_export(tmp_path: Path) -> None:
    bundle = read_source(write_export(tmp_path))
    media = {m.ref: m for m in bundle.media}
    harbour = media["/content/images/2021/03/harbour.png"]
    assert (harbour.data, harbour.filename, harbour.alt) == (
        PNG,
        "harbour.png",
        "The harbour at dawn",
    )
    posts = by_slug(bundle)
    assert posts["hello-from-ghost"].cover == harbour.ref
    # An image hosted elsewhere stays a URL, with no media.
    assert posts["remote"].cover == "https://images.example.org/u/photo.jpg"


def test_without_the_images_folder_covers_stay_urls(tmp_path: Path) -> None:
    bundle = read_source(write_export(tmp_path, images=False))
    assert [(m.ref, m.data) for m in bundle.media] == [
        ("/content/images/2021/03/harbour.png", None)
    ]


def test_a_zip_with_the_json_and_its_images(tmp_path: Path) -> None:
    path = tmp_path / "ghost.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ghost/export.json", json.dumps(sample_export()))
        zf.writestr("ghost/content/images/2021/03/harbour.png", PNG)
    bundle = read_source(path)
    assert bundle.format == "ghost"
    assert {m.ref: m.data for m in bundle.media}["/content/images/2021/03/harbour.png"] == PNG


def test_mobiledoc_markdown_cards_and_plain_text_fallback(tmp_path: Path) -> None:
    bundle = read_source(write_export(tmp_path))
    posts = by_slug(bundle)
    assert posts["old-style"].body_md == "Written in *Ghost 1*.\n"
    assert posts["lost"].body_md == "Only words.\n"
    assert any("lost" in w and "no rendered html" in w for w in bundle.warnings)


def test_older_exports_without_the_db_list(tmp_path: Path) -> None:
    document = sample_export()["db"][0]
    assert read_source(write_export(tmp_path, document=document)).format == "ghost"


# --- broken files -------------------------------------------------------------------------------


def test_malformed_json_names_the_file_and_line(tmp_path: Path) -> None:
    text = json.dumps(sample_export(), indent=1).replace(
        '"title": "A draft",', '"title": "A draft"', 1
    )
    path = write_export(tmp_path, text=text, images=False)
    with pytest.raises(ImportFailed, match=r"line \d+, column \d+: not valid JSON") as caught:
        read_source(path)
    assert str(caught.value).startswith(str(path))


def test_an_invalid_date_names_the_post(tmp_path: Path) -> None:
    document = sample_export()
    document["db"][0]["data"]["posts"][1]["updated_at"] = "last tuesday"
    path = write_export(tmp_path, document=document, images=False)
    with pytest.raises(ImportFailed, match=r"post 2 \(a-draft\): updated_at: 'last tuesday'"):
        read_source(path)


def test_duplicate_slugs_are_refused(tmp_path: Path) -> None:
    document = sample_export()
    document["db"][0]["data"]["posts"][1]["slug"] = "hello-from-ghost"
    path = write_export(tmp_path, document=document, images=False)
    with pytest.raises(ImportFailed, match="slug 'hello-from-ghost' appears twice"):
        read_source(path)


def test_not_utf8_is_refused_with_the_line(tmp_path: Path) -> None:
    path = write_export(tmp_path, images=False)
    path.write_bytes(path.read_bytes().replace(b"Only words", b"Only \xffwords"))
    with pytest.raises(ImportFailed, match=r"line \d+: not UTF-8"):
        read_source(path)


def test_the_reader_refuses_json_that_is_not_ghost(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"exported_on": 1, "data": "nothing"}', encoding="utf-8")
    with Source(path) as source:
        assert ghost.sniff(source)
        with pytest.raises(ImportFailed, match="not a Ghost export"):
            ghost.read(source)


# --- a full import into a real site --------------------------------------------------------


def test_a_full_import_answers_its_pages_and_old_links(cast, tmp_path: Path) -> None:
    from sqlalchemy import select

    from pyproject.blog.db import get_database
    from pyproject.blog.importing import Options, run_import
    from pyproject.blog.models import Post

    report = run_import(cast.app, write_export(tmp_path), Options())
    assert report.count("created") == 8, report.lines()
    assert report.media_stored == 1
    assert sorted(report.authors_created) == ["gia", "sam"]
    reader = cast.anonymous
    page = reader.get("/posts/hello-from-ghost")
    assert page.status_code == 200
    assert "alert(2)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "Travel" in page.text and "Harbours" in page.text and "#import" not in page.text
    assert not any("content/images" in img["src"] for img in page.html.select("article img"))
    moved = reader.get("/hello-from-ghost/")
    assert (moved.status_code, moved.location.rsplit("/", 1)[-1]) == (301, "hello-from-ghost")
    assert reader.get("/a-draft/").status_code == 404
    assert reader.get("/posts/later").status_code == 404
    with get_database(cast.app).read() as db:
        hello = db.scalar(select(Post).where(Post.slug == "hello-from-ghost"))
        assert hello.cover_media is not None and hello.cover_media.alt == "The harbour at dawn"
        assert [t.name for t in hello.tags] == ["Harbours", "Travel"]
    (tmp_path / "again").mkdir()
    again = run_import(cast.app, write_export(tmp_path / "again"), Options())
    assert again.count("created") == 0


def test_a_broken_export_writes_nothing(cast, tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from pyproject.blog.db import get_database
    from pyproject.blog.importing import Options, run_import
    from pyproject.blog.models import Post, User

    document = sample_export()
    document["db"][0]["data"]["posts"][-1]["published_at"] = "2021-02-30T00:00:00Z"
    path = write_export(tmp_path, document=document)
    with pytest.raises(ImportFailed, match=r"post 8 .*published_at"):
        run_import(cast.app, path, Options())
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(Post)) == 0
        assert db.scalar(select(func.count()).select_from(User)) == 3
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.png"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "slug",
                    "title",
                    "html",
                    "status",
                    "type",
                    "published_at",
                    "updated_at",
                    "mobiledoc",
                    "lexical",
                    "feature_image",
                    "post_id",
                    "tag_id",
                    "author_id",
                    "name",
                    "visibility",
                    "sort_order",
                    "email",
                    "cards",
                    "sections",
                    "custom_excerpt",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.dictionaries(
        st.sampled_from(["posts", "tags", "posts_tags", "users", "posts_authors", "posts_meta"]),
        JSON_VALUES | st.lists(st.dictionaries(st.sampled_from(["id", "slug", "html", "status",
               "published_at", "post_id", "tag_id", "author_id", "mobiledoc"]), JSON_VALUES,
               max_size=5), max_size=3),
        max_size=6,
    )
)  # fmt: skip
def test_any_json_shape_gives_a_bundle_or_a_clear_error(tmp_path: Path, data) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps({"db": [{"meta": {"exported_on": 1}, "data": data}]}))
    try:
        bundle = read_source(path)
    except ImportFailed as problem:
        assert str(problem).startswith(str(path))
    else:
        assert bundle.format == "ghost"
