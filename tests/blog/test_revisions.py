"""Revisions: every save is kept, shown as a word diff, restorable; edits that cross get a 409.

Everything goes through the pages an author uses: the editor, the history, a revision's
diff and its "Restore" button. The database is read only to check what was stored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import select, text

from blog.conftest import (
    Cast,
    csrf_token,
    delete_post,
    edit_post,
    form_of,
    make_blog_app,
    make_cast,
    slug_of,
    write_post,
)
from pyproject.blog.db import get_database
from pyproject.blog.models import Post, Revision
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

# --- reading the pages -------------------------------------------------------------------


def history(client: TestClient, slug: str) -> list[dict[str, Any]]:
    """Give the rows of a post's history page, as shown (newest first)."""
    page = client.get(f"/posts/{slug}/revisions")
    assert page.status_code == 200, page.status_code
    rows = []
    for row in page.html.select("main table tbody tr"):
        cells = row.select("td")
        number = cells[0].select_one("a").get_text(strip=True)
        rows.append(
            {
                "number": int(number.lstrip("#")),
                "current": "(current)" in cells[0].get_text(),
                "kind": cells[1].get_text(strip=True),
                "by": cells[2].get_text(strip=True),
                "when": cells[3].select_one("time")["datetime"],
                "words": int(cells[4].get_text(strip=True)),
                "restorable": cells[5].select_one("form") is not None,
            }
        )
    return rows


def diff_of(page: TestResponse, selector: str = "pre.diff") -> dict[str, Any]:
    """Give the inserted pieces, deleted pieces and unchanged text of a rendered diff."""
    element = page.html.select_one(selector)
    assert element is not None, f"no {selector} on the page"
    unchanged = "".join(
        s for s in element.find_all(string=True) if s.parent.name not in ("ins", "del")
    )
    return {
        "ins": [e.get_text() for e in element.select("ins")],
        "del": [e.get_text() for e in element.select("del")],
        "unchanged": unchanged,
        "tags": {child.name for child in element.find_all(True)},
    }


def stored_revisions(app: App, slug: str) -> list[Revision]:
    """Give a post's revisions as stored, oldest first."""
    with get_database(app).read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        return list(
            db.scalars(
                select(Revision).where(Revision.post_id == post_id).order_by(Revision.number)
            )
        )


def current_post(app: App, slug: str) -> Post:
    with get_database(app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        assert post is not None, slug
        post.tags  # noqa: B018 - load the tags before the session closes
        return post


def press(client: TestClient, page: str, action: str) -> TestResponse:
    """Load `page` and submit its form whose action is `action` (a button's form)."""
    values = form_of(client.get(page), f'form[action="{action}"]')
    return client.post(action, data=values)


def body_shown(client: TestClient, slug: str) -> str:
    return client.get(f"/posts/{slug}").html.select_one(".post-body").get_text(" ", strip=True)


# --- a revision per save -----------------------------------------------------------------


def test_every_save_keeps_a_revision_listed_newest_first(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(
        write_post(cast.author, title="Rivers", body="Rivers run to the sea.", tags="water")
    )
    assert edit_post(cast.author, slug, body="Rivers run slowly to the sea.").status_code == 303
    assert (
        edit_post(
            cast.admin,
            slug,
            title="Rivers and lakes",
            body="Rivers run slowly to the ocean.",
            summary="Wet.",
        ).status_code
        == 303
    )

    rows = history(cast.author, slug)
    assert [r["number"] for r in rows] == [3, 2, 1]
    assert [r["kind"] for r in rows] == ["save"] * 3
    assert [r["by"] for r in rows] == ["Ada Admin", "Alice Author", "Alice Author"]
    # 5 words written; then "slowly" inserted; then "sea." replaced by "ocean.".
    assert [r["words"] for r in rows] == [2, 1, 5]
    assert [r["current"] for r in rows] == [True, False, False]
    assert [r["restorable"] for r in rows] == [False, True, True]
    assert rows[0]["when"] >= rows[1]["when"] >= rows[2]["when"]

    stored = stored_revisions(cast.app, slug)
    assert [(r.number, r.kind, r.title, r.body_md, r.tags, r.summary) for r in stored] == [
        (1, "save", "Rivers", "Rivers run to the sea.", "water", ""),
        (2, "save", "Rivers", "Rivers run slowly to the sea.", "water", ""),
        (3, "save", "Rivers and lakes", "Rivers run slowly to the ocean.", "water", "Wet."),
    ]
    assert current_post(cast.app, slug).revision == 3


def test_the_editor_names_the_current_revision_and_carries_it(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="First."))
    edit_post(cast.author, slug, body="Second.")
    editor = cast.author.get(f"/posts/{slug}/edit")
    assert form_of(editor, "#post-form")["base_revision"] == "2"
    assert "Revision 2" in editor.html.select_one("main").get_text()
    assert editor.html.select_one(f'main a[href="/posts/{slug}/revisions"]') is not None


# --- the diff ------------------------------------------------------------------------------


def test_a_revision_shows_insertions_deletions_and_unchanged_words(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(
        write_post(
            cast.author,
            title="The fox",
            body="The quick brown fox jumps over the dog.\n\nA second paragraph stays.",
            tags="animals",
        )
    )
    edit_post(
        cast.author,
        slug,
        title="The red fox",
        body="The quick red fox jumps over the lazy dog.\n\nA second paragraph stays.",
        tags="animals, colours",
    )

    page = cast.author.get(f"/posts/{slug}/revisions/2")
    body = diff_of(page)
    assert body["del"] == ["brown "]
    assert body["ins"] == ["red ", "lazy "]
    # Only the changed paragraph is shown; the unchanged one is its context (#23).
    assert body["unchanged"] == "The quick fox jumps over the dog."
    assert body["tags"] == {"ins", "del"}
    context = page.html.select_one("pre.diff-context")
    assert context is not None and context.get_text() == "A second paragraph stays."
    title = diff_of(page, "dl.diff-fields dd:nth-of-type(1)")
    assert (title["ins"], title["del"], title["unchanged"]) == (["red "], [], "The fox")
    tags = diff_of(page, "dl.diff-fields dd:nth-of-type(2)")
    assert (tags["del"], tags["ins"]) == ([], ["colours"])  # a set: "animals" stayed
    summary_line = page.html.select_one("main p.muted").get_text(" ", strip=True)
    assert "Compared with revision 1: 2 words inserted, 1 deleted." in summary_line


def test_the_first_revision_is_all_insertion(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Hi", body="Hello there, readers."))
    body = diff_of(cast.author.get(f"/posts/{slug}/revisions/1"))
    assert body["ins"] == ["Hello there, readers."]
    assert body["del"] == []
    assert body["unchanged"] == ""


def test_a_diff_escapes_what_the_author_wrote(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="Plain words here."))
    edit_post(cast.author, slug, body='Plain <script>alert("x")</script> words <b>here</b>.')
    page = cast.author.get(f"/posts/{slug}/revisions/2")
    body = diff_of(page)
    assert body["tags"] <= {"ins", "del"}
    assert page.html.select("main script, main b") == []
    assert '<script>alert("x")</script> ' in body["ins"]
    assert "&lt;script&gt;" in page.text


def test_a_revision_that_does_not_exist_is_404(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author))
    assert cast.author.get(f"/posts/{slug}/revisions/2").status_code == 404
    assert cast.author.get(f"/posts/{slug}/revisions/0").status_code == 404
    action = f"/posts/{slug}/revisions/7/restore"
    token = csrf_token(cast.author)
    assert cast.author.post(action, data={"csrf_token": token}).status_code == 404
    assert len(stored_revisions(cast.app, slug)) == 1


# --- restoring -----------------------------------------------------------------------------


def test_restoring_makes_the_old_content_current_as_a_new_revision(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(
        write_post(
            cast.author,
            title="Version one",
            body="The original words, carefully chosen.",
            tags="first, words",
            summary="The first summary.",
        )
    )
    edit_post(
        cast.author,
        slug,
        title="Version two",
        body="Entirely different text.",
        tags="second",
        summary="",
    )
    before = [
        (r.number, r.kind, r.title, r.body_md, r.tags) for r in stored_revisions(cast.app, slug)
    ]

    restored = press(cast.author, f"/posts/{slug}/revisions", f"/posts/{slug}/revisions/1/restore")
    assert restored.status_code == 303
    assert restored.location == f"/posts/{slug}"

    rows = history(cast.author, slug)
    assert [(r["number"], r["kind"], r["current"]) for r in rows] == [
        (3, "restore", True),
        (2, "save", False),
        (1, "save", False),
    ]
    assert rows[0]["by"] == "Alice Author"
    stored = stored_revisions(cast.app, slug)
    assert [(r.number, r.kind, r.title, r.body_md, r.tags) for r in stored[:2]] == before
    assert (stored[2].title, stored[2].body_md, stored[2].tags, stored[2].summary) == (
        "Version one",
        "The original words, carefully chosen.",
        "first, words",
        "The first summary.",
    )

    post = current_post(cast.app, slug)
    assert (post.title, post.body_md, post.revision) == (
        "Version one",
        "The original words, carefully chosen.",
        3,
    )
    assert sorted(tag.name for tag in post.tags) == ["first", "words"]
    assert (post.summary, post.summary_is_custom) == ("The first summary.", True)
    assert body_shown(cast.anonymous, slug) == "The original words, carefully chosen."
    # The editor now starts from the restored text and revision.
    form = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    assert (form["title"], form["body"], form["base_revision"]) == (
        "Version one",
        "The original words, carefully chosen.",
        "3",
    )


def test_restoring_from_the_revision_page_works_for_an_admin(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="Keep me."))
    edit_post(cast.author, slug, body="Replace me.")
    page = f"/posts/{slug}/revisions/1"
    assert press(cast.admin, page, f"/posts/{slug}/revisions/1/restore").status_code == 303
    assert history(cast.author, slug)[0] | {"when": None} == {
        "number": 3,
        "current": True,
        "kind": "restore",
        "by": "Ada Admin",
        "when": None,
        "words": 2,
        "restorable": False,
    }
    assert body_shown(cast.anonymous, slug) == "Keep me."


# --- who may see and change what -----------------------------------------------------------


def post_rows(app: App, slug: str) -> dict[str, list[dict[str, Any]]]:
    """Give every stored row (all columns, as stored) of a post and of what hangs on it."""
    with get_database(app).engine.connect() as connection:
        post = connection.execute(text("SELECT * FROM posts WHERE slug = :s"), {"s": slug}).all()
        post_id = post[0].id if post else -1
        rows = {"posts": [dict(row._mapping) for row in post]}
        for table in ("revisions", "post_tags", "post_slugs"):
            rows[table] = [
                dict(row._mapping)
                for row in connection.execute(
                    text(f"SELECT * FROM {table} WHERE post_id = :id ORDER BY 1, 2"),
                    {"id": post_id},
                )
            ]
        return rows


# (method, path, does the post start in the trash, what success answers)
ACTIONS = {
    "history": ("GET", "/posts/{slug}/revisions", False, 200),
    "revision": ("GET", "/posts/{slug}/revisions/1", False, 200),
    "restore revision": ("POST", "/posts/{slug}/revisions/1/restore", False, 303),
    "trash": ("POST", "/posts/{slug}/delete", False, 303),
    "restore from trash": ("POST", "/posts/{slug}/restore", True, 303),
    "purge": ("POST", "/posts/{slug}/purge", True, 303),
}


def changed_as_expected(action: str, before: dict[str, list], after: dict[str, list]) -> bool:
    """Give whether a successful `action` changed the post's rows the way it should."""
    if action in ("history", "revision"):
        return after == before
    if action == "restore revision":
        return len(after["revisions"]) == len(before["revisions"]) + 1
    if action == "trash":
        return before["posts"][0]["deleted_at"] is None and after["posts"][0]["deleted_at"]
    if action == "restore from trash":
        return before["posts"][0]["deleted_at"] and after["posts"][0]["deleted_at"] is None
    return after == {"posts": [], "revisions": [], "post_tags": [], "post_slugs": []}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("visitor", ["anonymous", "other", "admin", "author"])
def test_only_the_author_and_admins_see_revisions_and_trash_posts(
    shared_cast: Cast, visitor: str, action: str
) -> None:
    cast = shared_cast
    method, pattern, trashed, success = ACTIONS[action]
    slug = slug_of(
        write_post(cast.author, title=f"Access {visitor} {action}", body="Words.", tags="a, b")
    )
    edit_post(cast.author, slug, body="Other words.")
    if trashed:
        assert delete_post(cast.author, slug).status_code == 303
    path = pattern.format(slug=slug)
    client = cast.client(visitor)
    before = post_rows(cast.app, slug)

    if method == "GET":
        answer = client.get(path)
    else:
        answer = client.post(path, data={"csrf_token": csrf_token(client)})

    after = post_rows(cast.app, slug)
    if visitor == "anonymous":
        assert answer.status_code == 303
        location = answer.location or ""
        assert location.startswith("/login?next=")
        assert unquote(location.removeprefix("/login?next=")) == path
    elif visitor == "other":
        assert answer.status_code == 403
    else:
        assert answer.status_code == success
        assert changed_as_expected(action, before, after)
    if visitor in ("anonymous", "other"):
        assert after == before, "the post changed for someone who may not change it"


# --- edits that cross ----------------------------------------------------------------------


def test_a_save_from_an_older_revision_gets_409_and_keeps_the_authors_text(
    any_db_cast: Cast,
) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Shared", body="Line one.\n\nLine two.", tags="t"))
    # Alice opens the editor; meanwhile the admin saves the post.
    mine = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    assert mine["base_revision"] == "1"
    assert (
        edit_post(cast.admin, slug, body="Line one.\n\nLine two, by the admin.").status_code == 303
    )
    stored_before = post_rows(cast.app, slug)

    my_text = 'Line one, by Alice <em>& friends</em>.\n\nLine two.\n\nA new "third" line.'
    mine.update(title="Shared, by Alice", body=my_text, tags="t, mine")
    conflict = cast.author.post(f"/posts/{slug}/edit", data=mine)

    assert conflict.status_code == 409
    assert post_rows(cast.app, slug) == stored_before, "a refused save changed something"
    main = conflict.html.select_one("main")
    assert "revision 2" in main.get_text()
    current = main.select_one("details pre").get_text()
    assert current == "Line one.\n\nLine two, by the admin."
    diff = diff_of(conflict)
    assert diff["del"] == ["one.\n", "two, by the admin."]
    assert diff["ins"] == [
        "one, by Alice <em>& friends</em>.\n",
        'two.\n\nA new "third" line.',
    ]
    assert diff["unchanged"] == "Line \nLine "
    assert main.select("em") == []

    kept = conflict.form_values("main form")
    assert kept["body"] == my_text
    assert (kept["title"], kept["tags"], kept["slug"]) == ("Shared, by Alice", "t, mine", slug)
    assert kept["base_revision"] == "2"
    assert kept["status"] == "published"

    again = cast.author.post(f"/posts/{slug}/edit", data=kept)
    assert again.status_code == 303
    post = current_post(cast.app, slug)
    assert (post.title, post.body_md, post.revision) == ("Shared, by Alice", my_text, 3)
    assert [r["by"] for r in history(cast.author, slug)] == [
        "Alice Author",
        "Ada Admin",
        "Alice Author",
    ]


@pytest.mark.parametrize("base", ["", "0", "abc", "99", "-1"])
def test_a_save_without_the_current_revision_is_refused(shared_cast: Cast, base: str) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title=f"Base {base!r}", body="Stays."))
    form = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    form.update(body="Would replace.", base_revision=base)
    answer = cast.author.post(f"/posts/{slug}/edit", data=form)
    assert answer.status_code == 409
    assert answer.form_values("main form")["body"] == "Would replace."
    assert current_post(cast.app, slug).body_md == "Stays."


def test_two_tabs_of_one_author_conflict_too(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="Start."))
    first = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    second = dict(first)
    first["body"] = "From the first tab."
    second["body"] = "From the second tab."
    saved = cast.author.post(f"/posts/{slug}/edit", data=first, follow_redirects=True)
    assert saved.status_code == 200
    answer = cast.author.post(f"/posts/{slug}/edit", data=second)
    assert answer.status_code == 409
    assert answer.form_values("main form")["body"] == "From the second tab."
    assert current_post(cast.app, slug).body_md == "From the first tab."


# --- refused saves on SQLite ---------------------------------------------------------------


def age_sessions(app: App) -> None:
    """Make every session due for its daily refresh (as if last written two days ago)."""
    with get_database(app).engine.begin() as connection:
        for key, data in connection.execute(text("SELECT key, data FROM sessions")).all():
            values = json.loads(data)
            values["_refreshed"] = int(time.time()) - 2 * 24 * 3600
            connection.execute(
                text("UPDATE sessions SET data = :d WHERE key = :k"),
                {"d": json.dumps(values), "k": key},
            )


@pytest.mark.parametrize("refused", ["conflict", "form error"])
@pytest.mark.parametrize("session_write", ["daily refresh", "flash shown"])
def test_a_refused_save_gives_the_author_their_text_back_whatever_the_session_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str, session_write: str
) -> None:
    # The session is written after the view; on SQLite a POST that saved nothing must have
    # let go of its write lock by then. Should it not, fail after a moment, not after 30 s.
    monkeypatch.setattr("pyproject.blog.db.SQLITE_BUSY_TIMEOUT_MS", 200)
    app = make_blog_app(tmp_path)
    try:
        cast = make_cast(app)
        slug = slug_of(write_post(cast.author, body="Saved text."))
        form = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
        if refused == "conflict":
            assert edit_post(cast.admin, slug, body="The admin's text.").status_code == 303
            expected = 409
        else:
            form["tags"] = "x" * 41  # a tag too long (an empty title is allowed: #23)
            expected = 422
        if session_write == "daily refresh":
            age_sessions(app)
        else:
            # A save whose redirect was never followed leaves its flash for the next page.
            saved = edit_post(cast.author, slug, summary="A flash is waiting.")
            assert saved.status_code == 303
            if refused == "form error":
                form["base_revision"] = "2"
        form["body"] = "Words the author must not lose."

        answer = cast.author.post(f"/posts/{slug}/edit", data=form)

        assert answer.status_code == expected
        chosen = "main form" if expected == 409 else "#post-form"
        assert answer.form_values(chosen)["body"] == "Words the author must not lose."
    finally:
        get_database(app).dispose()


def test_tags_in_another_order_are_no_change_and_long_texts_collapse(cast: Cast) -> None:
    paragraphs = [f"Paragraph {n} has some words in it, seven or so." for n in range(40)]
    slug = slug_of(
        write_post(cast.author, title="Long", body="\n\n".join(paragraphs), tags="a, b, c")
    )
    changed = [*paragraphs]
    changed[20] = "Paragraph twenty was rewritten."
    changed[35] = "Paragraph thirty-five too."
    edit_post(cast.author, slug, title="Long", body="\n\n".join(changed), tags="c, a, b")

    page = cast.author.get(f"/posts/{slug}/revisions/2")
    tags = page.html.select("dl.diff-fields dd")[1]
    assert not tags.select("ins, del") and "(unchanged)" in tags.get_text()
    changes = page.html.select(".diff-change")
    assert [c["id"] for c in changes] == ["change-1", "change-2"]
    assert changes[0].select_one('a[href="#change-2"]').get_text() == "Next change"
    assert changes[1].select_one('a[href="#change-1"]').get_text() == "Previous change"
    collapsed = [p.get_text() for p in page.html.select(".diff-collapsed")]
    # Ten words a paragraph; one paragraph of context either side of each change: 0-18
    # hidden, 19 shown; 21 shown, 22-33 hidden, 34 shown; 36 shown, 37-39 hidden.
    assert collapsed == ["190 unchanged words", "120 unchanged words", "30 unchanged words"]
