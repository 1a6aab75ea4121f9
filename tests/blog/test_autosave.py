"""Autosave: the editor's text is kept as the author types, without touching what readers see.

The requests are the ones the editor's script sends: a form body with the four fields,
the CSRF token in X-CSRF-Token, and `Accept: application/json`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from blog.conftest import (
    Cast,
    Clock,
    csrf_token,
    edit_post,
    form_of,
    make_cast,
    slug_of,
    write_post,
)
from blog.test_revisions import body_shown, current_post, history, post_rows, stored_revisions
from pyproject.lib.testing import TestClient, TestResponse

JSON = {"Accept": "application/json", "X-Requested-With": "fetch"}


def autosave(client: TestClient, url: str, **fields: str) -> TestResponse:
    """Send what the editor's script sends a few seconds after typing stops."""
    data = {"title": "", "body": "", "summary": "", "tags": ""}
    data.update(fields)
    return client.post(url, data=data, headers={**JSON, "X-CSRF-Token": csrf_token(client)})


def banner_link(page: TestResponse) -> str | None:
    """Give the "Restore them" link of the editor's unsaved-changes banner, if it shows one."""
    link = page.html.select_one('main .flash a[href*="autosave="]')
    return link["href"] if link is not None else None


# --- keeping the text ----------------------------------------------------------------------


def test_an_autosave_is_kept_as_a_revision_without_publishing_it(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Live", body="What readers see.", tags="t"))
    before = post_rows(cast.app, slug)

    answer = autosave(
        cast.author,
        f"/posts/{slug}/autosave",
        title="Live, being edited",
        body="What readers see, and more being typed.",
        tags="t, new",
        summary="Soon.",
    )

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    reply = answer.json
    assert set(reply) == {"ok", "saved_at", "revision"}
    assert reply["ok"] is True
    assert reply["revision"] == 2
    assert re.fullmatch(r"\d\d:\d\d", reply["saved_at"])

    after = post_rows(cast.app, slug)
    assert after["posts"] == before["posts"], "an autosave changed the post itself"
    assert body_shown(cast.anonymous, slug) == "What readers see."
    assert current_post(cast.app, slug).revision == 1
    rows = history(cast.author, slug)
    assert [(r["number"], r["kind"], r["current"]) for r in rows] == [
        (2, "autosave", False),
        (1, "save", True),
    ]
    kept = stored_revisions(cast.app, slug)[-1]
    assert (kept.title, kept.body_md, kept.tags, kept.summary) == (
        "Live, being edited",
        "What readers see, and more being typed.",
        "t, new",
        "Soon.",
    )


def test_an_autosave_replaces_the_same_authors_previous_one(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Draft", body="One."))
    url = f"/posts/{slug}/autosave"
    for text in ("One. Two.", "One. Two. Three."):
        assert autosave(cast.author, url, title="Draft", body=text).status_code == 200
    assert autosave(cast.admin, url, title="Draft", body="One, by the admin.").status_code == 200
    assert autosave(cast.author, url, title="Draft", body="One. Two. Three. Four.").json["ok"]

    autosaves = [r for r in stored_revisions(cast.app, slug) if r.kind == "autosave"]
    by_author = {r.author.username: r.body_md for r in autosaves}
    assert len(autosaves) == 2
    assert by_author == {"alice": "One. Two. Three. Four.", "admin": "One, by the admin."}

    # Saves in between are never pruned; only the author's one autosave is replaced.
    assert edit_post(cast.author, slug, body="One. Two. Three. Four. Saved.").status_code == 303
    assert autosave(cast.author, url, title="Draft", body="After the save.").json["ok"]
    kept = [(r.kind, r.author.username, r.body_md) for r in stored_revisions(cast.app, slug)]
    assert kept == [
        ("save", "alice", "One."),
        ("autosave", "admin", "One, by the admin."),
        ("save", "alice", "One. Two. Three. Four. Saved."),
        ("autosave", "alice", "After the save."),
    ]


def test_an_autosave_does_not_make_the_open_editor_conflict(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="Start."))
    form = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    autosave(cast.author, f"/posts/{slug}/autosave", title=form["title"], body="Start. More.")
    form["body"] = "Start. More. Saved."
    assert cast.author.post(f"/posts/{slug}/edit", data=form).status_code == 303
    assert current_post(cast.app, slug).body_md == "Start. More. Saved."
    assert [r["kind"] for r in history(cast.author, slug)] == ["save", "autosave", "save"]


# --- offering it back ----------------------------------------------------------------------


def test_the_editor_offers_a_newer_autosave_and_restores_it_into_the_form(
    any_db_cast: Cast,
) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Saved title", body="Saved body.", tags="saved"))
    number = autosave(
        cast.author,
        f"/posts/{slug}/autosave",
        title="Typed title",
        body="Typed body, never saved.",
        tags="typed, words",
        summary="Typed summary.",
    ).json["revision"]

    editor = cast.author.get(f"/posts/{slug}/edit")
    assert banner_link(editor) == f"/posts/{slug}/edit?autosave={number}"
    shown = form_of(editor, "#post-form")
    assert (shown["title"], shown["body"]) == ("Saved title", "Saved body.")

    restored = cast.author.get(banner_link(editor))
    form = form_of(restored, "#post-form")
    assert (form["title"], form["body"], form["tags"], form["summary"]) == (
        "Typed title",
        "Typed body, never saved.",
        "typed, words",
        "Typed summary.",
    )
    assert form["base_revision"] == "1"
    assert banner_link(restored) is None
    assert "Restored your unsaved changes" in restored.html.select_one("main").get_text()
    assert body_shown(cast.anonymous, slug) == "Saved body."

    assert cast.author.post(f"/posts/{slug}/edit", data=form).status_code == 303
    post = current_post(cast.app, slug)
    assert (post.title, post.body_md, post.revision) == (
        "Typed title",
        "Typed body, never saved.",
        3,
    )
    assert body_shown(cast.anonymous, slug) == "Typed body, never saved."
    assert banner_link(cast.author.get(f"/posts/{slug}/edit")) is None


def test_an_autosave_older_than_the_last_save_is_not_offered(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="One."))
    autosave(cast.author, f"/posts/{slug}/autosave", title="A post", body="One. Two.")
    edit_post(cast.author, slug, body="One. Three.")
    editor = cast.author.get(f"/posts/{slug}/edit")
    assert banner_link(editor) is None
    number = stored_revisions(cast.app, slug)[1].number
    restored = form_of(cast.author.get(f"/posts/{slug}/edit?autosave={number}"), "#post-form")
    assert restored["body"] == "One. Three."


def test_only_the_autosaves_own_author_is_offered_it(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="Alice's words."))
    number = autosave(
        cast.admin, f"/posts/{slug}/autosave", title="A post", body="The admin's unsaved words."
    ).json["revision"]
    assert banner_link(cast.author.get(f"/posts/{slug}/edit")) is None
    restored = form_of(cast.author.get(f"/posts/{slug}/edit?autosave={number}"), "#post-form")
    assert restored["body"] == "Alice's words."
    assert banner_link(cast.admin.get(f"/posts/{slug}/edit")) == (
        f"/posts/{slug}/edit?autosave={number}"
    )


@pytest.mark.parametrize("value", ["1", "99", "abc", "", "-2"])
def test_a_wrong_autosave_number_leaves_the_form_as_saved(shared_cast: Cast, value: str) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title=f"Wrong autosave {value}", body="As saved."))
    autosave(cast.author, f"/posts/{slug}/autosave", title="A post", body="Typed.")
    page = cast.author.get(f"/posts/{slug}/edit?autosave={value}")
    assert form_of(page, "#post-form")["body"] == "As saved."


# --- refusing it ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "length"),
    [("title", 201), ("summary", 301), ("tags", 1001), ("body", 200_001)],
)
def test_an_autosave_with_a_field_too_long_is_a_422_json_error(
    shared_cast: Cast, field: str, length: int
) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title=f"Too long {field}", body="Short."))
    fields = {"title": "Fine", "body": "Fine."}
    fields[field] = "x" * length
    answer = autosave(cast.author, f"/posts/{slug}/autosave", **fields)
    assert answer.status_code == 422
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json["error"]
    assert error["status"] == 422
    assert "too long" in error["message"]
    assert [r.kind for r in stored_revisions(cast.app, slug)] == ["save"]
    created = autosave(cast.author, "/posts/autosave", **fields)
    assert created.status_code == 422
    assert "too long" in created.json["error"]["message"]


@pytest.mark.parametrize(
    ("visitor", "status"), [("anonymous", 303), ("other", 403), ("admin", 200)]
)
def test_only_the_author_and_admins_may_autosave_a_post(
    shared_cast: Cast, visitor: str, status: int
) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title=f"Autosave by {visitor}", body="Mine."))
    before = post_rows(cast.app, slug)
    answer = autosave(cast.client(visitor), f"/posts/{slug}/autosave", title="X", body="Theirs.")
    assert answer.status_code == status
    kinds = [r.kind for r in stored_revisions(cast.app, slug)]
    assert kinds == (["save", "autosave"] if status == 200 else ["save"])
    if status != 200:
        assert post_rows(cast.app, slug) == before


# --- a post that was never saved -----------------------------------------------------------


def test_autosaving_a_new_post_creates_its_draft(any_db_cast: Cast) -> None:
    cast = any_db_cast
    answer = autosave(
        cast.author,
        "/posts/autosave",
        title="Thoughts at dawn",
        body="The sun *rises*.",
        tags="sky",
    )
    assert answer.status_code == 200
    reply: dict[str, Any] = answer.json
    slug = reply["slug"]
    assert slug == "thoughts-at-dawn"
    assert reply["ok"] is True
    assert reply["edit_url"] == f"/posts/{slug}/edit"
    assert reply["autosave_url"] == f"/posts/{slug}/autosave"
    assert re.fullmatch(r"\d\d:\d\d", reply["saved_at"])

    post = current_post(cast.app, slug)
    assert (post.status, post.published_at, post.body_md) == ("draft", None, "The sun *rises*.")
    assert [t.name for t in post.tags] == ["sky"]
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    assert cast.anonymous.get("/").text.count("Thoughts at dawn") == 0
    dashboard = cast.author.get("/drafts").html.select_one("main table").get_text(" ", strip=True)
    assert "Thoughts at dawn" in dashboard and "Draft" in dashboard

    form = form_of(cast.author.get(reply["edit_url"]), "#post-form")
    assert (form["title"], form["body"], form["tags"]) == (
        "Thoughts at dawn",
        "The sun *rises*.",
        "sky",
    )
    assert form["base_revision"] == str(reply["revision"])
    later = autosave(cast.author, reply["autosave_url"], title="Thoughts at dawn", body="More.")
    assert later.json["ok"] is True
    form.update(body="The sun *rises*. Done.", status="published")
    assert cast.author.post(reply["edit_url"], data=form).status_code == 303
    assert body_shown(cast.anonymous, slug) == "The sun rises . Done."


def test_an_untitled_new_post_gets_a_draft_all_the_same(cast: Cast) -> None:
    reply = autosave(cast.author, "/posts/autosave", body="Only a body so far.").json
    post = current_post(cast.app, reply["slug"])
    # An untitled note stays untitled; its first words name its slug (#23).
    assert (post.title, post.slug) == ("", "only-a-body-so-far")
    assert (post.status, post.body_md) == ("draft", "Only a body so far.")


def test_saved_at_is_the_time_in_the_sites_time_zone(make_app: Any, clock: Clock) -> None:
    clock.now = clock.now.replace(hour=10, minute=0)
    cast = make_cast(make_app(TIMEZONE="Asia/Kolkata"))
    slug = slug_of(write_post(cast.author))
    clock.advance(minutes=7)
    reply = autosave(cast.author, f"/posts/{slug}/autosave", title="A post", body="Typed.").json
    assert reply["saved_at"] == "15:37"


# --- the history after an autosave ---------------------------------------------------------


def test_a_saves_diff_after_an_autosave_agrees_with_its_words_changed(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, body="One two three"))
    autosave(cast.author, f"/posts/{slug}/autosave", title="A post", body="One two three DRAFT")
    edit_post(cast.author, slug, body="One two three SAVED")
    listed = history(cast.author, slug)[0]
    assert (listed["number"], listed["kind"], listed["words"]) == (3, "save", 1)
    page = cast.author.get(f"/posts/{slug}/revisions/3")
    changed = [e.get_text() for e in page.html.select("pre.diff ins, pre.diff del")]
    assert sum(len(text.split()) for text in changed) == listed["words"], changed
