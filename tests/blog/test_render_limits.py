"""Render budgets and the time limit, as an author meets them through the editor.

A save, an autosave, a preview or a restore whose Markdown goes past a budget is refused
with 422, naming what was too much, and the author's text comes back as typed. A render
that runs past the time limit is stopped: the request answers 422 within that time and
the next render works. Later [TOC] markers render as nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from blog.conftest import (
    Cast,
    csrf_token,
    edit_post,
    field_error,
    make_blog_app,
    make_cast,
    slug_of,
    write_post,
)
from blog.test_autosave import JSON, autosave
from pyproject.blog.db import get_database
from pyproject.lib.testing import TestResponse

TOO_MANY_HEADINGS = "".join(f"## Part {n}\n\nText.\n\n" for n in range(301))


def body_typed(page: TestResponse) -> str:
    return page.html.select_one('textarea[name="body"]').get_text()


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (TOO_MANY_HEADINGS, "301 headings"),
        ("a|b\n-|-\n" + "1|2\n" * 2100, "table cells"),
        ("> " * 40 + "deep", "levels of nesting"),
        ("*a* " * 7000, "inline markup"),
        ("<b><i><u>" * 2000, "levels of nested HTML"),
        ("<span>" * 100 + "x", "levels of nested HTML"),
        ("Note[^1] " * 600 + "\n\n[^1]: The note.", "footnote references"),
        ("Rule.\n\n" + "- - -\n\n" * 201, "201 horizontal rules"),
        ("```\nx\n```\n\n" * 201, "201 fenced code blocks"),
        ("<span" + " a" * 65 + ">x</span>", "attributes in one HTML tag"),
        ("".join(f"*[A{n}]: t\n" for n in range(101)), "abbreviation definitions"),
        ("a\n\n" * 6000, "HTML tags once rendered"),
    ],
)
def test_a_save_past_a_budget_is_refused_with_what_and_the_text_kept(
    cast: Cast, body: str, what: str
) -> None:
    page = write_post(cast.author, title="Too much", body=body)
    assert page.status_code == 422
    assert what in field_error(page, "body")
    assert body_typed(page) == body
    assert page.form_values('form[action="/posts"]')["title"] == "Too much"


def test_an_edit_past_a_budget_keeps_the_post_and_the_typed_text(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Fine", body="Short.", status="published"))
    page = edit_post(cast.author, slug, body=TOO_MANY_HEADINGS)
    assert page.status_code == 422
    assert "at most 300" in field_error(page, "body")
    assert body_typed(page) == TOO_MANY_HEADINGS
    assert "Short." in cast.anonymous.get(f"/posts/{slug}").text


def test_only_the_first_toc_marker_makes_a_table_of_contents(cast: Cast) -> None:
    body = "[TOC]\n\n# One\n\n## Two\n\n[TOC]\n\n## Three\n\n> [TOC]\n\n- [TOC]\n\n*[TOC]*\n\nEnd."
    slug = slug_of(write_post(cast.author, title="Contents", body=body, status="published"))
    article = cast.anonymous.get(f"/posts/{slug}").html.select_one(".post-body")
    assert len(article.select("div.toc")) == 1
    assert "[TOC]" not in article.get_text()


def test_a_preview_past_a_budget_answers_422_with_the_reason(cast: Cast) -> None:
    token = csrf_token(cast.author, "/posts/new")
    answer = cast.author.post(
        "/posts/preview",
        data={"body": TOO_MANY_HEADINGS, "csrf_token": token},
        headers={"X-Requested-With": "fetch"},
    )
    assert answer.status_code == 422
    assert "301 headings" in answer.text
    page = cast.author.post(
        "/posts/preview", data={"body": TOO_MANY_HEADINGS, "title": "T", "csrf_token": token}
    )
    assert page.status_code == 422
    assert body_typed(page) == TOO_MANY_HEADINGS


# --- autosave validates like save --------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"tags": ",".join(f"t{n}" for n in range(200))}, "at most 10 tags"),
        ({"tags": "x" * 41}, "at most 40 characters"),
        ({"title": "bad\x00title"}, "not allowed"),
        ({"body": "fine\x07"}, "not allowed"),
        ({"title": "t" * 201}, "too long"),
        ({"body": TOO_MANY_HEADINGS}, "301 headings"),
    ],
)
def test_an_autosave_is_refused_where_a_save_would_be(
    cast: Cast, fields: dict[str, str], said: str
) -> None:
    slug = slug_of(write_post(cast.author, title="Draft", body="Start."))
    for url in (f"/posts/{slug}/autosave", "/posts/autosave"):
        answer = autosave(cast.author, url, **{"title": "Draft", "body": "Text.", **fields})
        assert answer.status_code == 422, url
        assert said in answer.json["error"]["message"], answer.json
    # Nothing was kept: no autosave revision and no new draft.
    with get_database(cast.app).read() as db:
        from sqlalchemy import func, select

        from pyproject.blog.models import Post, Revision

        assert db.scalar(select(func.count()).select_from(Post)) == 1
        assert db.scalar(select(func.count()).where(Revision.kind == "autosave")) == 0


def test_an_untitled_autosave_is_still_kept(cast: Cast) -> None:
    answer = autosave(cast.author, "/posts/autosave", title="", body="Only a beginning.")
    assert answer.status_code == 200
    assert answer.json["ok"]


# --- the time limit ------------------------------------------------------------------------


@pytest.fixture
def hurried(tmp_path: Path) -> Cast:
    """A blog whose renders may take at most 50 ms."""
    app = make_blog_app(tmp_path, overrides={"RENDER_TIME_LIMIT_MS": 50})
    try:
        yield make_cast(app)
    finally:
        get_database(app).dispose()


def test_a_render_past_the_time_limit_is_stopped_and_the_next_one_works(hurried: Cast) -> None:
    slow = "".join(
        f"Paragraph {n} with [a link](/x{n}) and *some* `code`.\n\n" for n in range(2000)
    )
    started = time.monotonic()
    page = write_post(hurried.author, title="Slow", body=slow)
    took = time.monotonic() - started
    assert page.status_code == 422
    assert "took longer than 0.05 seconds" in field_error(page, "body")
    assert body_typed(page) == slow
    assert took < 5, f"the refusal took {took:.1f} s"
    # The helper was replaced: a small post renders and saves.
    assert write_post(hurried.author, title="Quick", body="Short.").status_code == 303
    fetched = hurried.author.post(
        "/posts/preview",
        data={"body": slow, "csrf_token": csrf_token(hurried.author, "/posts/new")},
        headers=JSON,
    )
    assert fetched.status_code == 422
    assert "took longer" in fetched.text
