"""The trash: a deleted post waits there, restorable, until purged; its URLs then answer 410."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from blog.conftest import (
    Cast,
    Clock,
    delete_post,
    edit_post,
    form_of,
    make_blog_app,
    make_cast,
    set_post,
    slug_of,
    utc_ago,
    write_post,
)
from blog.test_revisions import post_rows
from pyproject.blog.db import get_database
from pyproject.blog.models import GoneSlug, Post
from pyproject.blog.trash import purge_expired
from pyproject.config import ROOT
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse


def trash_rows(client: TestClient) -> list[dict[str, Any]]:
    """Give the rows of /trash as shown: title, author (admins), and the buttons' actions."""
    page = client.get("/trash")
    assert page.status_code == 200, page.status_code
    rows = []
    for row in page.html.select("main table tbody tr"):
        cells = [cell.get_text(" ", strip=True) for cell in row.select("td")]
        rows.append(
            {
                "title": cells[0],
                "cells": cells,
                "actions": [form["action"] for form in row.select("form")],
            }
        )
    return rows


def press_in_trash(client: TestClient, action: str) -> TestResponse:
    values = form_of(client.get("/trash"), f'main form[action="{action}"]')
    return client.post(action, data=values)


def statuses(cast: Cast, path: str) -> dict[str, int]:
    return {who: cast.client(who).get(path).status_code for who in ("anonymous", "author", "admin")}


def stored(app: App, slug: str) -> Post | None:
    with get_database(app).read() as db:
        return db.scalar(select(Post).where(Post.slug == slug))


def gone_slugs(app: App) -> set[str]:
    with get_database(app).read() as db:
        return set(db.scalars(select(GoneSlug.slug)))


READER_PAGES = ("/", "/posts", "/feed.atom", "/sitemap.xml", "/api/posts", "/authors/alice")


# --- trash, restore, purge -----------------------------------------------------------------


def test_a_trashed_post_can_be_restored_as_it_was_then_purged_for_good(
    any_db_cast: Cast,
) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Bin me", body="Binnable words.", tags="bins"))
    assert slug == "bin-me"
    assert (
        edit_post(cast.author, slug, slug="binned", body="Binnable words, edited.").status_code
        == 303
    )
    slug = "binned"
    before = post_rows(cast.app, slug)

    deleted = delete_post(cast.author, slug)
    assert deleted.status_code == 303
    assert deleted.location == "/trash"
    rows = trash_rows(cast.author)
    assert [r["title"] for r in rows] == ["Bin me"]
    assert rows[0]["actions"] == [f"/posts/{slug}/restore", f"/posts/{slug}/purge"]
    assert statuses(cast, f"/posts/{slug}") == {"anonymous": 410, "author": 410, "admin": 410}
    assert statuses(cast, "/posts/bin-me") == {"anonymous": 410, "author": 410, "admin": 410}
    assert cast.author.get(f"/posts/{slug}/edit").status_code == 410
    for path in READER_PAGES:
        assert slug not in cast.anonymous.get(path).text, path
    assert f'href="/posts/{slug}"' not in cast.author.get("/drafts").text

    restored = press_in_trash(cast.author, f"/posts/{slug}/restore")
    assert restored.status_code == 303
    assert restored.location == f"/posts/{slug}"
    assert post_rows(cast.app, slug) == before, "restoring did not give the post back as it was"
    assert statuses(cast, f"/posts/{slug}") == {"anonymous": 200, "author": 200, "admin": 200}
    assert cast.anonymous.get("/posts/bin-me").location == f"/posts/{slug}"
    assert trash_rows(cast.author) == []

    assert delete_post(cast.author, slug).status_code == 303
    purged = press_in_trash(cast.author, f"/posts/{slug}/purge")
    assert purged.status_code == 303
    assert purged.location == "/trash"
    assert post_rows(cast.app, slug) == {
        "posts": [],
        "revisions": [],
        "post_tags": [],
        "post_slugs": [],
    }
    assert gone_slugs(cast.app) >= {"binned", "bin-me"}
    assert statuses(cast, f"/posts/{slug}") == {"anonymous": 410, "author": 410, "admin": 410}
    assert statuses(cast, "/posts/bin-me") == {"anonymous": 410, "author": 410, "admin": 410}
    assert trash_rows(cast.author) == []
    for path in (f"/posts/{slug}/restore", f"/posts/{slug}/purge"):
        token = form_of(cast.author.get("/trash"), 'form[action="/logout"]')["csrf_token"]
        assert cast.author.post(path, data={"csrf_token": token}).status_code == 404


def test_the_trash_shows_authors_their_own_posts_and_admins_everyones(cast: Cast) -> None:
    mine = slug_of(write_post(cast.author, title="Alice's bin"))
    theirs = slug_of(write_post(cast.other, title="Bob's bin"))
    kept = slug_of(write_post(cast.author, title="Alice's keeper"))
    delete_post(cast.author, mine)
    delete_post(cast.other, theirs)

    assert [r["title"] for r in trash_rows(cast.author)] == ["Alice's bin"]
    assert [r["title"] for r in trash_rows(cast.other)] == ["Bob's bin"]
    admin_rows = {r["title"]: r["cells"][1] for r in trash_rows(cast.admin)}
    assert admin_rows == {"Alice's bin": "Alice Author", "Bob's bin": "Bob Other"}
    assert stored(cast.app, kept).deleted_at is None
    assert cast.anonymous.get("/trash").status_code == 303


def test_an_admin_can_restore_and_purge_an_authors_post(cast: Cast) -> None:
    first = slug_of(write_post(cast.author, title="Admin restores"))
    second = slug_of(write_post(cast.author, title="Admin purges"))
    delete_post(cast.author, first)
    delete_post(cast.author, second)
    assert press_in_trash(cast.admin, f"/posts/{first}/restore").status_code == 303
    assert press_in_trash(cast.admin, f"/posts/{second}/purge").status_code == 303
    assert cast.anonymous.get(f"/posts/{first}").status_code == 200
    assert cast.anonymous.get(f"/posts/{second}").status_code == 410
    assert trash_rows(cast.author) == []


def test_a_draft_purged_from_the_trash_is_gone_too(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Never shown", status="draft"))
    delete_post(cast.author, slug)
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    assert cast.author.get(f"/posts/{slug}").status_code == 410
    press_in_trash(cast.author, f"/posts/{slug}/purge")
    assert stored(cast.app, slug) is None
    assert cast.author.get(f"/posts/{slug}").status_code == 410


# --- purging what has waited long enough ----------------------------------------------------


def test_purge_expired_deletes_only_posts_trashed_longer_than_the_limit(
    any_db_cast: Cast, clock: Clock
) -> None:
    cast = any_db_cast
    old = slug_of(write_post(cast.author, title="Trashed first", body="Old."))
    new = slug_of(write_post(cast.author, title="Trashed later", body="New."))
    delete_post(cast.author, old)
    trashed_at = clock.now
    # Sessions end by the real clock after 14 days: sign-ins stay within that.
    clock.advance(days=10)
    delete_post(cast.author, new)
    rows = {r["title"]: r["cells"] for r in trash_rows(cast.author)}
    assert (trashed_at + timedelta(days=30)).strftime("%-d %B %Y") in rows["Trashed first"]
    database = get_database(cast.app)

    clock.now = trashed_at + timedelta(days=29, hours=23)
    assert purge_expired(database, 30) == 0
    assert stored(cast.app, old) is not None

    clock.now = trashed_at + timedelta(days=31)
    assert purge_expired(database, 30) == 1
    assert stored(cast.app, old) is None
    assert stored(cast.app, new).deleted_at is not None
    assert cast.anonymous.get(f"/posts/{old}").status_code == 410
    assert cast.anonymous.get(f"/posts/{new}").status_code == 410
    assert purge_expired(database, 30) == 0

    clock.advance(days=10)
    assert purge_expired(database, 30) == 1
    assert stored(cast.app, new) is None


def test_the_trash_says_how_long_posts_wait_from_the_setting(make_app: Any) -> None:
    cast = make_cast(make_app(TRASH_DAYS=7))
    slug = slug_of(write_post(cast.author, title="Short wait"))
    delete_post(cast.author, slug)
    page = cast.author.get("/trash").html.select_one("main").get_text(" ", strip=True)
    assert "stay here for 7 days" in page


def run_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def command_env(database_url: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "trash-test-secret",
        "DEBUG": "false",
        "BASE_URL": "http://localhost",
        "LOG_LEVEL": "WARNING",
        "TRASH_DAYS": "30",
        **settings,
    }


def test_purge_trash_and_prepare_purge_what_waited_longer_than_trash_days(
    tmp_path: Path,
) -> None:
    app = make_blog_app(tmp_path)
    try:
        cast = make_cast(app)
        slugs = [slug_of(write_post(cast.author, title=f"Old bin {n}")) for n in range(3)]
        for slug in slugs:
            delete_post(cast.author, slug)
        # Trashed 31 days ago (the processes below run on the real clock).
        set_post(app, slugs[0], deleted_at=utc_ago(days=31))
        set_post(app, slugs[1], deleted_at=utc_ago(days=29))
        env = command_env(get_database(app).engine.url.render_as_string(hide_password=False))

        done = run_main(env, "purge-trash")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Purged 1 post from the trash."
        assert [stored(app, slug) is None for slug in slugs] == [True, False, False]
        assert cast.anonymous.get(f"/posts/{slugs[0]}").status_code == 410

        # `prepare` (start-up) purges too, by the TRASH_DAYS setting.
        prepared = run_main(command_env(env["DATABASE_URL"], TRASH_DAYS="28"), "prepare")
        assert prepared.returncode == 0, prepared.stderr
        assert [stored(app, slug) is None for slug in slugs] == [True, True, False]
        assert cast.anonymous.get(f"/posts/{slugs[1]}").status_code == 410
        assert [r["title"] for r in trash_rows(cast.author)] == ["Old bin 2"]
    finally:
        get_database(app).dispose()


def test_prepare_brings_a_fresh_database_up_and_purges_nothing(tmp_path: Path) -> None:
    env = command_env(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    prepared = run_main(env, "prepare")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert run_main(env, "purge-trash").stdout.strip() == "Purged 0 posts from the trash."
