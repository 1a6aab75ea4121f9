"""Tests for pyproject/blog/importing.py: our own zip (the round trip), Markdown trees (Jekyll,
Hugo), the writer's rules (one transaction, authors, conflicts, idempotence, old links) and
every kind of bad input, each leaving the database and the media folder as they were.

Everything runs on real SQLite files through `python main.py import` (pyproject.cli.main),
the web pages through the test client, and the web import's job on the real worker.
"""

from __future__ import annotations

import io
import json
import stat
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from blog.conftest import (
    Cast,
    csrf_token,
    edit_post,
    make_blog_app,
    set_post,
    signup_admin,
    slug_of,
    write_post,
)
from blog.test_media import multipart, uploaded
from pyproject.blog import jobs
from pyproject.blog.db import get_database
from pyproject.blog.importing import (
    ImportFailed,
    Options,
    Source,
    apply_import,
    parse_date,
    plan_import,
    read_source,
    split_front_matter,
)
from pyproject.blog.mediastore import media_root
from pyproject.blog.models import (
    ImportRun,
    Media,
    OldSlug,
    Post,
    Redirect,
    Revision,
    Tag,
    User,
)
from pyproject.cli import main
from pyproject.lib import App

TABLES = (Post, User, Media, Redirect, OldSlug, Revision, Tag)


# --- helpers -----------------------------------------------------------------------------------


def empty_site(folder: Path, **overrides: Any) -> App:
    """A new blog with only its admin (signed up through /setup)."""
    folder.mkdir(parents=True, exist_ok=True)
    app = make_blog_app(folder, overrides=overrides or None)
    assert signup_admin(app.test_client()).status_code == 303
    return app


def state(app: App) -> tuple[dict[str, int], list[str]]:
    """Row counts of the tables an import writes, and the files in the media folder."""
    with get_database(app).read() as db:
        counts = {m.__tablename__: db.scalar(select(func.count()).select_from(m)) for m in TABLES}
    root = media_root(app.config)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return counts, files


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def run(app: App, *args: str) -> int:
    return main(app, ["import", *map(str, args)])


def export(app: App, path: Path, *args: str) -> bytes:
    assert main(app, ["export", str(path), *args]) == 0
    return path.read_bytes()


def make_zip(path: Path, entries: dict[str, bytes | str], *, links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, data)
    return path


def post_row(app: App, slug: str) -> Post | None:
    with get_database(app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        if post is not None:
            post.tags  # noqa: B018 - loaded while the session is open
            post.author  # noqa: B018
        return post


# --- the round trip ----------------------------------------------------------------------------


@pytest.fixture
def full_site(cast: Cast) -> Cast:
    """alice's published post with a picture, cover, tags, an earlier slug and revisions; her
    draft; a scheduled post; bob's post."""
    picture = uploaded(cast, png(), name="red.png", alt="A red square")
    with get_database(cast.app).read() as db:
        media_id = db.scalar(select(Media.id))
    slug = slug_of(
        write_post(
            cast.author,
            title="Café at dawn",
            body=f"Morning.\n\n{picture['markdown']}\n\nMore *words*.",
            tags="python, Café",
            cover=str(media_id),
            summary="A custom summary",
        )
    )
    assert edit_post(cast.author, slug, slug="cafe-dawn", body="Morning, again.").status_code == 303
    slug_of(write_post(cast.author, title="Alice's draft", body="Not yet.", status="draft"))
    scheduled = slug_of(write_post(cast.author, title="Later", body="Soon."))
    set_post(cast.app, scheduled, published_at=datetime.now(UTC) + timedelta(days=3))
    slug_of(write_post(cast.other, title="Bob writes", body="Hello from bob.", tags="misc"))
    set_post(cast.app, "bob-writes", comments="closed")  # a per-post option
    return cast


def test_round_trip_gives_the_same_zip(full_site: Cast, tmp_path: Path) -> None:
    first = export(full_site.app, tmp_path / "one.zip", "--with-revisions")
    target = empty_site(tmp_path / "new")
    assert run(target, tmp_path / "one.zip") == 0
    second = export(target, tmp_path / "two.zip", "--with-revisions")
    one, two = zipfile.ZipFile(tmp_path / "one.zip"), zipfile.ZipFile(tmp_path / "two.zip")
    assert one.namelist() == two.namelist()
    for name in one.namelist():
        assert one.read(name) == two.read(name), name
    assert first == second
    names = one.namelist()
    assert "posts/cafe-dawn.md" in names and "posts/alice-s-draft.md" in names
    assert any(n.startswith("media/") and n.endswith(".png") for n in names)
    assert any(n.startswith("revisions/cafe-dawn/") for n in names)

    post = post_row(target, "cafe-dawn")
    assert post is not None and post.author.username == "alice"
    assert sorted(t.name for t in post.tags) == ["Café", "python"]
    assert post.summary == "A custom summary" and post.cover_media_id is not None
    assert post_row(target, "alice-s-draft").status == "draft"
    assert post_row(target, "later").is_scheduled
    assert post_row(target, "bob-writes").comments == "closed"
    assert b"comments: closed" in one.read("posts/bob-writes.md")
    reader = target.test_client()
    assert reader.get("/posts/cafe-dawn").status_code == 200
    old = reader.get("/posts/cafe-at-dawn")
    assert old.status_code == 301 and old.location.endswith("/posts/cafe-dawn")
    with get_database(target).read() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        assert alice is not None and not alice.is_active  # created, waiting for an admin


@pytest.mark.parametrize("any_db_app", ["postgres"], indirect=True)  # SQLite: above
def test_round_trip_into_postgresql(full_site: Cast, any_db_app: App, tmp_path: Path) -> None:
    first = export(full_site.app, tmp_path / "one.zip", "--with-revisions")
    assert signup_admin(any_db_app.test_client()).status_code == 303
    assert run(any_db_app, tmp_path / "one.zip") == 0
    assert export(any_db_app, tmp_path / "two.zip", "--with-revisions") == first
    moved = any_db_app.test_client().get("/posts/cafe-at-dawn")
    assert moved.status_code == 301


def test_importing_the_same_zip_twice_creates_nothing(full_site: Cast, tmp_path: Path) -> None:
    export(full_site.app, tmp_path / "site.zip")
    target = empty_site(tmp_path / "new")
    assert run(target, tmp_path / "site.zip") == 0
    before = state(target)
    assert run(target, tmp_path / "site.zip") == 0
    assert state(target) == before


def test_a_dry_run_writes_nothing_and_reports(full_site: Cast, tmp_path: Path, capsys) -> None:
    export(full_site.app, tmp_path / "site.zip")
    target = empty_site(tmp_path / "new")
    before = state(target)
    capsys.readouterr()
    assert run(target, tmp_path / "site.zip", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "4 posts would be created" in out and "created  cafe-dawn" in out
    assert "alice (cannot sign in until an admin activates it)" in out
    assert state(target) == before


def test_as_gives_every_post_to_one_account(full_site: Cast, tmp_path: Path) -> None:
    export(full_site.app, tmp_path / "site.zip")
    target = empty_site(tmp_path / "new")
    assert run(target, tmp_path / "site.zip", "--as", "admin") == 0
    with get_database(target).read() as db:
        assert set(db.scalars(select(User.username))) == {"admin"}
        authors = set(db.scalars(select(User.username).join(Post, Post.author_id == User.id)))
    assert authors == {"admin"}


def test_on_conflict_skip_update_rename(cast: Cast, tmp_path: Path) -> None:
    slug_of(write_post(cast.author, title="Same", body="Ours."))
    tree = tmp_path / "md"
    (tree / "posts").mkdir(parents=True)
    (tree / "posts" / "same.md").write_text("---\ntitle: Same\nauthor: alice\n---\nTheirs.\n")
    assert run(cast.app, tree, "--on-conflict", "skip") == 0
    assert post_row(cast.app, "same").body_md == "Ours."
    assert run(cast.app, tree, "--on-conflict", "rename") == 0
    assert post_row(cast.app, "same-2").body_md == "Theirs.\n"
    assert run(cast.app, tree, "--on-conflict", "update") == 0
    assert post_row(cast.app, "same").body_md == "Theirs.\n"
    before = state(cast.app)
    assert run(cast.app, tree, "--on-conflict", "rename") == 0  # the same again: nothing
    assert state(cast.app) == before


# --- Markdown trees ----------------------------------------------------------------------------


def test_a_jekyll_site(tmp_path: Path) -> None:
    site = tmp_path / "jekyll"
    (site / "_posts").mkdir(parents=True)
    (site / "_drafts").mkdir()
    (site / "assets").mkdir()
    (site / "assets" / "sky.png").write_bytes(png((30, 60, 200)))
    (site / "_posts" / "2019-05-01-hello-world.md").write_text(
        "---\nlayout: post\ntitle: Hello, world\ncategories: [travel]\ntags: [sea, sky]\n"
        "redirect_from:\n  - /?p=123\n  - /2019/05/01/hello-world.html\n---\n"
        "A day at sea.\n\n![The sky](/assets/sky.png)\n\n<script>alert(1)</script>\n"
    )
    (site / "_drafts" / "unfinished.md").write_text("---\ntitle: Unfinished\n---\nSoon.\n")
    (site / "README.md").write_text("not a post")
    app = empty_site(tmp_path / "blog")
    assert run(app, site) == 0
    post = post_row(app, "hello-world")
    assert post is not None
    assert post.published_at == datetime(2019, 5, 1, tzinfo=UTC)
    assert sorted(t.name for t in post.tags) == ["sea", "sky", "travel"]
    assert "/media/files/" in post.body_md and "/assets/sky.png" not in post.body_md
    assert "<script" not in post.body_html
    assert post_row(app, "unfinished").status == "draft"
    reader = app.test_client()
    page = reader.get("/posts/hello-world")
    assert page.status_code == 200 and not page.html.select(".post-body script")
    for old in ("/?p=123", "/2019/05/01/hello-world.html"):
        moved = reader.get(old)
        assert moved.status_code == 301, old
        assert moved.location.endswith("/posts/hello-world")
    assert reader.get("/?p=124").status_code == 200  # the home page, as before
    assert reader.get("/2019/05/01/nothing.html").status_code == 404
    _, files = state(app)
    assert any(f.endswith("original.png") for f in files)


def test_a_hugo_site_zipped(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "hugo.zip",
        {
            "content/posts/first.md": '+++\ntitle = "First"\ndate = 2020-02-03T04:05:06Z\n'
            'draft = false\naliases = ["/old/first/"]\ntags = ["go"]\n+++\nHello.\n',
            "content/posts/wip.md": "---\ntitle: WIP\ndraft: true\n---\nNot yet.\n",
            "content/posts/trip/index.md": "---\ntitle: Trip\ndate: 2021-01-01\n"
            "cover: beach.png\n---\n![beach](beach.png) and ![logo](/images/logo.png)\n",
            "content/posts/trip/beach.png": png((240, 220, 120)),
            "static/images/logo.png": png((10, 10, 10), (8, 8)),
            "content/_index.md": "---\ntitle: Home\n---\n",
        },
    )
    app = empty_site(tmp_path / "blog")
    assert run(app, archive) == 0
    first = post_row(app, "first")
    assert first.published_at == datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert [t.name for t in first.tags] == ["go"]
    assert post_row(app, "wip").status == "draft"
    trip = post_row(app, "trip")
    assert trip.cover_media_id is not None and trip.body_md.count("/media/files/") == 2
    assert post_row(app, "home") is None
    moved = app.test_client().get("/old/first/")
    assert moved.status_code == 301 and moved.location.endswith("/posts/first")


def test_front_matter_readers() -> None:
    assert split_front_matter("+++\ntitle = 'T'\n+++\nbody", "x") == ({"title": "T"}, "body")
    assert split_front_matter("no front matter", "x") == ({}, "no front matter")
    assert parse_date("2019-05-01 10:00:00 +0200", "x") == datetime(2019, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(ImportFailed, match="x: line 3: front matter"):
        split_front_matter("---\ntitle: [unclosed\n---\n", "x")


# --- bad input: a clear error naming the file and where, and nothing written ------------------


def one_post(title: str = "A") -> str:
    return f"---\ntitle: {title}\n---\nText.\n"


BAD_INPUTS: dict[str, tuple[Any, str]] = {
    "not a zip or any format": (b"PK\x03\x04 this is no zip at all" * 10, "not a format"),
    "zip slip": ({"../evil.md": one_post()}, "'../evil.md': a path leaving the archive"),
    "absolute path": ({"/etc/evil.md": one_post()}, "an absolute path is refused"),
    "symbolic link": ({"posts/a.md": one_post(), "posts/link.md": "/etc/passwd"}, "link.md"),
    "zip bomb": ({"posts/a.md": one_post(), "posts/big.md": b"0" * 3_000_000}, "zip bomb"),
    "YAML object tag": (
        {"posts/a.md": "---\ntitle: !!python/object/apply:os.system ['touch /tmp/x']\n---\n"},
        "posts/a.md: line 2: front matter",
    ),
    "invalid date": (
        {"posts/a.md": "---\ntitle: A\ndate: 2019-13-45\n---\n"},
        "posts/a.md: front matter: month must be in 1..12",
    ),
    "a date that is no date": (
        {"posts/a.md": "---\ntitle: A\ndate: last tuesday\n---\n"},
        "posts/a.md: date: 'last tuesday' is not a date",
    ),
    "non-UTF-8": ({"posts/a.md": "---\ntitle: Café\n---\n".encode("latin-1")}, "not UTF-8"),
    "duplicate slugs": (
        {
            "posts/a.md": "---\ntitle: A\nslug: same\n---\n",
            "posts/b.md": "---\ntitle: B\nslug: same\n---\n",
        },
        "posts/b.md: the slug 'same' is also used by posts/a.md",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_file_and_nothing_changes(
    cast: Cast, tmp_path: Path, capsys, case: str
) -> None:
    content, message = BAD_INPUTS[case]
    slug_of(write_post(cast.author, title="Before", body=uploaded(cast, png())["markdown"]))
    path = tmp_path / "bad.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        links = ("posts/link.md",) if case == "symbolic link" else ()
        # a good picture too: a refusal must not leave it stored
        make_zip(path, {**content, "images/new.png": png((1, 2, 3))}, links=links)
    before = state(cast.app)
    capsys.readouterr()
    assert run(cast.app, path) == 2
    error = capsys.readouterr().err
    assert str(path) in error and message in error, error
    assert "nothing was written" in error
    assert state(cast.app) == before


def test_over_the_size_setting_is_refused(tmp_path: Path, capsys) -> None:
    app = empty_site(tmp_path / "blog", IMPORT_MAX_BYTES=1000)
    path = make_zip(tmp_path / "big.zip", {"posts/a.md": one_post() + "x" * 5000 + "\n"})
    path.write_bytes(path.read_bytes() + b"\0" * 2000)
    before = state(app)
    assert run(app, path) == 2
    assert "IMPORT_MAX_BYTES" in capsys.readouterr().err
    assert state(app) == before


def test_a_failed_transaction_takes_back_the_stored_pictures(cast: Cast, tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "site.zip",
        {"posts/late.md": "---\ntitle: Late\n---\n![x](../img/p.png)\n", "img/p.png": png()},
    )
    before = state(cast.app)
    plan = plan_import(cast.app, read_source(archive), Options(importer="admin"))
    slug_of(write_post(cast.author, title="Late", body="Meanwhile."))  # takes the slug
    after_post = state(cast.app)
    with pytest.raises(ImportFailed, match="was taken meanwhile"):
        apply_import(cast.app, plan)
    assert state(cast.app) == after_post
    assert after_post[1] == before[1]


def test_source_refuses_links_in_a_folder(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.md").write_text(one_post())
    (tree / "secret.md").symlink_to("/etc/hostname")
    with pytest.raises(ImportFailed, match=r"secret\.md: a symbolic link is refused"):
        Source(tree)


# --- the web import ----------------------------------------------------------------------------


def upload_import(client, data: bytes, name: str = "site.zip", **fields: str):
    values = {"csrf_token": csrf_token(client, "/admin/import"), "on_conflict": "skip", **fields}
    body, content_type = multipart(values, [(name, data)])
    return client.post("/admin/import", data=body, content_type=content_type)


def test_the_web_import_checks_then_runs_as_a_job(full_site: Cast, tmp_path: Path) -> None:
    archive = export(full_site.app, tmp_path / "site.zip")
    target = empty_site(tmp_path / "new")
    admin = target.test_client()
    from blog.conftest import ADMIN, login

    assert login(admin, ADMIN.username, ADMIN.password).status_code == 303
    before = state(target)
    checked = upload_import(admin, archive)
    assert checked.status_code == 303, checked.text
    page = admin.get(checked.location)
    assert "4 posts would be created" in page.text
    assert state(target) == before  # the dry run wrote nothing
    form = page.form_values('form[action$="/run"]')
    action = page.html.select_one('form[action$="/run"]')["action"]
    worker = jobs.Worker(target, threads=1)
    worker.start()
    try:
        assert admin.post(action, data=form).status_code == 303
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = admin.get(checked.location)
            if "The import is done" in page.text:
                break
            assert page.html.select_one('meta[http-equiv="refresh"]') is not None
            time.sleep(0.2)
        else:
            pytest.fail("the import job did not finish")
    finally:
        worker.stop()
    assert "4 posts were created" in page.text
    assert page.html.select_one('meta[http-equiv="refresh"]') is None
    assert post_row(target, "cafe-dawn") is not None
    with get_database(target).read() as db:
        (row,) = db.scalars(select(ImportRun))
        assert row.state == "done"
    assert not any((Path(target.config["INSTANCE_PATH"]) / "imports").iterdir())


def test_the_web_import_refuses_a_bad_file_keeping_the_choices(cast: Cast) -> None:
    before = state(cast.app)
    answer = upload_import(cast.admin, b"not an export", name="x.zip", on_conflict="rename")
    assert answer.status_code == 422
    assert "not a format this blog imports" in answer.text
    assert answer.html.select_one('input[value="rename"]').has_attr("checked")
    assert state(cast.app) == before


def test_only_admins_import(cast: Cast) -> None:
    assert cast.author.get("/admin/import").status_code == 403
    assert cast.anonymous.get("/admin/import").status_code == 303


def test_the_report_escapes_what_the_file_says(cast: Cast, tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "x.zip", {"posts/a.md": "---\ntitle: <img src=x onerror=alert(1)>\n---\nHi\n"}
    )
    checked = upload_import(cast.admin, archive.read_bytes())
    page = cast.admin.get(checked.location)
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text


def test_json_report_round_trips() -> None:
    from pyproject.blog.importing import Item, Report

    report = Report(format="markdown", items=[Item("a.md", "A", "a", "created")], warnings=["w"])
    assert Report.from_json(report.to_json()) == report
    assert json.loads(report.to_json())["items"][0]["slug"] == "a"


def test_the_web_import_refuses_a_file_over_the_setting(tmp_path: Path) -> None:
    app = empty_site(tmp_path / "blog", IMPORT_MAX_BYTES=2000)
    admin = app.test_client()
    from blog.conftest import ADMIN, login

    assert login(admin, ADMIN.username, ADMIN.password).status_code == 303
    before = state(app)
    answer = upload_import(admin, b"x" * 5000, name="big.zip")
    assert answer.status_code == 413
    assert "over the 2000 bytes an import may be" in answer.text
    assert state(app) == before
    assert not list((tmp_path / "blog").glob("imports/*"))


def test_a_single_markdown_file_uploaded(cast: Cast) -> None:
    text = "---\ntitle: Alone\ntags: [solo]\n---\nJust me.\n"
    checked = upload_import(cast.admin, text.encode(), name="alone.md", **{"as": "alice"})
    assert checked.status_code == 303, checked.text
    page = cast.admin.get(checked.location)
    assert "1 post would be created" in page.text
    assert page.html.select_one("#import-report td").get_text() == "Alone"


def test_the_xss_corpus_through_an_import_runs_nothing(cast: Cast, tmp_path: Path) -> None:
    """Every payload of the corpus as imported titles, tags, summaries and bodies: the dry-run
    report and every imported post's page run no script."""
    import yaml
    from security.checks import chunked, load_corpus, script_problems

    entries: dict[str, bytes | str] = {}
    for n, chunk in enumerate(chunked(load_corpus(), 150)):
        front = {
            "title": " ".join(chunk)[:190],
            "tags": [p[:40] for p in chunk[:10]],
            "summary": " ".join(chunk)[:290],
            "slug": f"xss-{n}",
        }
        body = "\n\n".join(chunk)
        entries[f"posts/xss-{n}.md"] = f"---\n{yaml.safe_dump(front)}---\n{body}\n"
    archive = make_zip(tmp_path / "xss.zip", entries)

    def routable(path: str) -> bool:
        return bool(cast.app.router.allowed_methods(path))

    checked = upload_import(cast.admin, archive.read_bytes(), **{"as": "alice"})
    assert checked.status_code == 303, checked.text
    report = cast.admin.get(checked.location)
    assert script_problems(report.text, routable=routable) == []
    assert run(cast.app, archive, "--as", "alice") == 0
    shown = 0
    for n in range(len(entries)):
        page = cast.anonymous.get(f"/posts/xss-{n}")
        if page.status_code == 200:  # a chunk over a Markdown budget is skipped, reported
            shown += 1
            assert script_problems(page.text, routable=routable) == [], n
    assert shown >= len(entries) * 3 // 4, (shown, len(entries))


def test_an_import_not_confirmed_within_a_day_is_forgotten(cast: Cast, tmp_path: Path) -> None:
    from sqlalchemy import update

    archive = make_zip(tmp_path / "a.zip", {"posts/a.md": one_post()}).read_bytes()
    assert upload_import(cast.admin, archive).status_code == 303
    folder = Path(cast.app.config["INSTANCE_PATH"]) / "imports"
    (old_file,) = folder.iterdir()
    with get_database(cast.app).write() as db:
        db.execute(update(ImportRun).values(created_at=datetime.now(UTC) - timedelta(days=2)))
    assert upload_import(cast.admin, archive).status_code == 303
    assert not old_file.exists() and len(list(folder.iterdir())) == 1
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(ImportRun)) == 1


def test_posts_render_in_parallel_and_one_over_a_budget_is_skipped(
    cast: Cast, tmp_path: Path, capsys
) -> None:
    entries = {f"posts/p{n}.md": f"---\ntitle: Post {n}\n---\nText *{n}*.\n" for n in range(45)}
    entries["posts/p7.md"] = "---\ntitle: Post 7\n---\n" + "# h\n\n" * 400
    archive = make_zip(tmp_path / "many.zip", entries)
    capsys.readouterr()
    assert run(cast.app, archive, "--as", "alice") == 0
    out = capsys.readouterr().out
    assert "44 posts were created" in out and "1 skipped" in out
    assert "skipped  p7  [posts/p7.md] (cannot be rendered:" in out
    assert post_row(cast.app, "p7") is None
    assert "<em>44</em>" in post_row(cast.app, "p44").body_html
