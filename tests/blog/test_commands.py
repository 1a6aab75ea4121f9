"""Tests for pyproject/blog/commands.py: `python main.py migrate`, `create-user`, `rerender`.

The commands run in process through pyproject.cli.main, on a real SQLite file; one test
runs main.py in a subprocess, as an operator would. The create-user command's checks are
also run through main.py in tests/blog/test_auth.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from blog.conftest import Cast, login, slug_of, write_post
from pyproject.app import create_app
from pyproject.blog.commands import write_renders
from pyproject.blog.db import get_database
from pyproject.blog.markup import RENDERER_VERSION
from pyproject.blog.migrate import current_revision, head_revision
from pyproject.blog.models import Post, User
from pyproject.blog.rendering import render_post
from pyproject.cli import main
from pyproject.config import ROOT
from pyproject.lib import App

STALE_HTML = "<p>rendered by an old pipeline</p>"


def settings(folder: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "SECRET_KEY": "test-secret-key",
        "DEBUG": False,
        "BASE_URL": "http://localhost",
        "DATABASE_URL": f"sqlite:///{folder / 'blog.sqlite3'}",
        "INSTANCE_PATH": str(folder),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[App]:
    """The app on a SQLite file that no migration has touched yet."""
    app = create_app(settings(tmp_path))
    yield app
    get_database(app).dispose()


@pytest.fixture
def blog(shared_cast: Cast) -> Cast:
    """A migrated blog with its people, shared by the module (each test makes its own posts)."""
    return shared_cast


def post_row(app: App, slug: str) -> Post:
    with get_database(app).read() as db:
        return db.scalar(select(Post).where(Post.slug == slug))


def count_posts(app: App, *, stale: bool = False) -> int:
    with get_database(app).read() as db:
        query = select(Post.id)
        if stale:
            query = query.where(Post.render_version != RENDERER_VERSION)
        return len(db.scalars(query).all())


def make_stale(app: App, slug: str) -> None:
    """Make a post look rendered by an older pipeline."""
    with get_database(app).write() as db:
        db.execute(
            update(Post).where(Post.slug == slug).values(render_version=0, body_html=STALE_HTML)
        )


# --- migrate -------------------------------------------------------------------------------


def test_migrate_brings_an_empty_database_to_head_and_says_so(fresh: App, capsys):
    engine = get_database(fresh).engine
    head = head_revision(engine)

    assert main(fresh, ["migrate"]) == 0

    assert capsys.readouterr().out == f"Database at migration {head} (was None).\n"
    assert current_revision(engine) == head
    assert main(fresh, ["migrate"]) == 0
    assert capsys.readouterr().out == f"Database at migration {head}.\n"


def test_prepare_makes_the_instance_folder_and_migrates(tmp_path: Path):
    instance = tmp_path / "instance" / "nested"
    app = create_app(settings(tmp_path, INSTANCE_PATH=str(instance)))
    try:
        assert main(app, ["prepare"]) == 0

        assert instance.is_dir()
        engine = get_database(app).engine
        assert current_revision(engine) == head_revision(engine)
    finally:
        get_database(app).dispose()


def test_an_unknown_command_is_a_usage_error(fresh: App, capsys):
    with pytest.raises(SystemExit) as exited:
        main(fresh, ["no-such-command"])

    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["migrate", "create-user", "rerender", "prepare", "serve"])
def test_every_command_is_listed_in_the_help(fresh: App, capsys, name: str):
    with pytest.raises(SystemExit):
        main(fresh, ["--help"])

    assert name in capsys.readouterr().out


# --- create-user ---------------------------------------------------------------------------


def test_create_user_makes_an_author_by_default(blog: Cast, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("dana's passphrase\n"))

    code = main(
        blog.app,
        [
            "create-user",
            "--username",
            " Dana ",
            "--email",
            "Dana@Example.com",
            "--display-name",
            "Dana D.",
            "--password-stdin",
        ],
    )

    assert code == 0
    assert capsys.readouterr().out == "Created author dana.\n"
    with get_database(blog.app).read() as db:
        dana = db.scalar(select(User).where(User.username == "dana"))
    assert (dana.email, dana.role, dana.display_name) == ("dana@example.com", "author", "Dana D.")
    client = blog.app.test_client()
    assert login(client, "dana", "dana's passphrase").status_code == 303
    assert client.get("/admin/users").status_code == 403


def test_create_user_asks_twice_and_refuses_two_different_passwords(
    blog: Cast, monkeypatch, capsys
):
    answers = iter(["first passphrase", "second passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))

    code = main(blog.app, ["create-user", "--username", "erin", "--email", "erin@example.com"])

    assert code == 2
    assert "password: the two entries differ" in capsys.readouterr().err
    with get_database(blog.app).read() as db:
        assert db.scalar(select(User).where(User.username == "erin")) is None


# --- rerender ------------------------------------------------------------------------------


def test_rerender_renders_only_posts_made_by_an_older_pipeline(blog: Cast, capsys):
    stale = slug_of(write_post(blog.author, title="Stale", body="Some *emphasis*."))
    current = slug_of(write_post(blog.author, title="Current", body="Already **fine**."))
    make_stale(blog.app, stale)
    untouched = post_row(blog.app, current).body_html
    assert count_posts(blog.app, stale=True) == 1

    assert main(blog.app, ["rerender"]) == 0

    assert capsys.readouterr().out == f"Re-rendered 1 post (pipeline v{RENDERER_VERSION}).\n"
    assert count_posts(blog.app, stale=True) == 0
    redone = post_row(blog.app, stale)
    assert redone.render_version == RENDERER_VERSION
    assert "<em>emphasis</em>" in redone.body_html
    assert post_row(blog.app, current).body_html == untouched
    page = blog.anonymous.get(f"/posts/{stale}")
    assert page.html.select_one(".post-body em").get_text() == "emphasis"


def test_rerender_all_renders_every_post(blog: Cast, capsys):
    for n in range(3):
        write_post(blog.author, title=f"Post {n}")
    every = count_posts(blog.app)

    assert main(blog.app, ["rerender", "--all"]) == 0

    assert capsys.readouterr().out == f"Re-rendered {every} posts (pipeline v{RENDERER_VERSION}).\n"


def test_rerender_keeps_the_old_html_of_a_post_the_budgets_now_refuse(
    blog: Cast, tmp_path: Path, capsys
):
    headings = "\n\n".join(f"## Part {n}\n\nText {n}." for n in range(6))
    slug = slug_of(write_post(blog.author, title="Many parts", body=headings))
    fine = slug_of(write_post(blog.author, title="Fine", body="One part."))
    make_stale(blog.app, slug)
    make_stale(blog.app, fine)
    assert count_posts(blog.app, stale=True) == 2
    # The same database, after the operator lowered the headings budget.
    database_url = blog.app.config["DATABASE_URL"]
    stricter = create_app(settings(tmp_path, DATABASE_URL=database_url, MARKDOWN_MAX_HEADINGS=2))
    try:
        assert main(stricter, ["rerender"]) == 1

        out, err = capsys.readouterr()
        assert out == f"Re-rendered 1 post (pipeline v{RENDERER_VERSION}).\n"
        post_id = post_row(stricter, slug).id
        assert f"rerender: post {post_id} kept its old HTML:" in err
        assert "headings" in err
        assert post_row(stricter, slug).body_html == STALE_HTML
        assert post_row(stricter, fine).render_version == RENDERER_VERSION
    finally:
        get_database(stricter).dispose()
    assert main(blog.app, ["rerender"]) == 0  # with the budgets it was written under


def test_write_renders_skips_a_post_saved_while_it_was_rendering(blog: Cast):
    slug = slug_of(write_post(blog.author, title="Racing", body="Before."))
    post = post_row(blog.app, slug)
    rendered = render_post("Before.", blog.app)
    make_stale(blog.app, slug)
    database = get_database(blog.app)

    written = write_renders(database, {post.id: "Not what is stored now."}, {post.id: rendered})

    assert written == 0
    assert post_row(blog.app, slug).body_html == STALE_HTML
    assert write_renders(database, {post.id: "Before."}, {post.id: rendered}) == 1
    assert post_row(blog.app, slug).body_html == rendered.html


# --- through main.py -----------------------------------------------------------------------


def test_main_py_runs_a_command_with_settings_from_the_environment(blog: Cast):
    slug = slug_of(write_post(blog.author, title="From the shell", body="_shell_"))
    make_stale(blog.app, slug)
    database_url = blog.app.config["DATABASE_URL"]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "command-test-secret",
        "DEBUG": "false",
        "BASE_URL": "http://localhost",
        "LOG_LEVEL": "WARNING",
    }

    result = subprocess.run(
        [sys.executable, "main.py", "rerender"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Re-rendered 1 post (pipeline v{RENDERER_VERSION}).\n"
    assert "<em>shell</em>" in post_row(blog.app, slug).body_html
