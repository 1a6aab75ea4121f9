"""URLs never break: every slug a published post had answers 301 to its current one."""

from __future__ import annotations

import pytest

from blog.conftest import Cast, edit_post, field_error, form_of, slug_of, write_post
from blog.test_revisions import current_post


def earlier_slugs(cast: Cast, slug: str) -> list[str]:
    """Give the earlier slugs the editor lists under the slug field."""
    page = cast.author.get(f"/posts/{slug}/edit")
    assert page.status_code == 200, page.status_code
    return sorted(code.get_text() for code in page.html.select("#post-form p.hint code"))


def rename(cast: Cast, slug: str, new: str) -> None:
    saved = edit_post(cast.author, slug, slug=new)
    assert saved.status_code == 303, saved.status_code
    assert saved.location == f"/posts/{new}"


def test_every_earlier_slug_redirects_to_the_current_one(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="First name", body="Words."))
    assert slug == "first-name"
    rename(cast, "first-name", "second-name")
    rename(cast, "second-name", "third-name")

    for old in ("first-name", "second-name"):
        for visitor in ("anonymous", "other", "author"):
            answer = cast.client(visitor).get(f"/posts/{old}")
            assert answer.status_code == 301, (old, visitor)
            assert answer.location == "/posts/third-name"
        followed = cast.anonymous.get(f"/posts/{old}?utm=mail", follow_redirects=True)
        assert followed.status_code == 200
        assert followed.history[0].location == "/posts/third-name?utm=mail"
        assert cast.anonymous.head(f"/posts/{old}").status_code == 301
    assert cast.anonymous.get("/posts/third-name").status_code == 200
    assert earlier_slugs(cast, "third-name") == ["first-name", "second-name"]
    assert current_post(cast.app, "third-name").title == "First name"


def test_the_authors_pages_under_an_old_slug_redirect_too(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug_of(write_post(cast.author, title="Old place", body="Words."))
    rename(cast, "old-place", "new-place")
    for suffix in ("/edit", "/revisions", "/revisions/1"):
        answer = cast.author.get(f"/posts/old-place{suffix}")
        assert answer.status_code == 301, suffix
        assert answer.location == f"/posts/new-place{suffix}"
    # A form sent to the old address is sent on, body and method kept.
    form = form_of(cast.author.get("/posts/new-place/edit"), "#post-form")
    form["body"] = "Saved through the old address."
    answer = cast.author.post("/posts/old-place/edit", data=form)
    assert answer.status_code == 308
    assert answer.location == "/posts/new-place/edit"
    followed = cast.author.post("/posts/old-place/edit", data=form, follow_redirects=True)
    assert followed.status_code == 200
    assert current_post(cast.app, "new-place").body_md == "Saved through the old address."


def test_going_back_to_an_earlier_slug_makes_the_others_lead_there(cast: Cast) -> None:
    slug_of(write_post(cast.author, title="Alpha", body="Words."))
    rename(cast, "alpha", "beta")
    rename(cast, "beta", "gamma")
    rename(cast, "gamma", "alpha")
    assert cast.anonymous.get("/posts/alpha").status_code == 200
    for old in ("beta", "gamma"):
        assert cast.anonymous.get(f"/posts/{old}").location == "/posts/alpha"
    assert earlier_slugs(cast, "alpha") == ["beta", "gamma"]


def test_a_draft_that_was_never_published_leaves_no_redirect(cast: Cast) -> None:
    slug_of(write_post(cast.author, title="Rough", body="Words.", status="draft"))
    rename(cast, "rough", "polished")
    assert cast.anonymous.get("/posts/rough").status_code == 404
    assert cast.author.get("/posts/rough").status_code == 404
    assert earlier_slugs(cast, "polished") == []
    # ...so the slug is free for another post.
    assert slug_of(write_post(cast.other, title="Rough", body="Other words.")) == "rough"


@pytest.mark.parametrize("writer", ["author", "other"])
def test_a_new_post_cannot_take_a_slug_that_leads_to_another_post(
    any_db_cast: Cast, writer: str
) -> None:
    cast = any_db_cast
    slug_of(write_post(cast.author, title="Taken", body="Words."))
    rename(cast, "taken", "moved")

    answer = write_post(cast.client(writer), title="Newcomer", body="Fresh words.", slug="taken")

    assert answer.status_code == 422
    assert field_error(answer, "slug") == (
        "This slug was used by another post and still leads to it. Choose another one."
    )
    form = answer.form_values("#post-form")
    assert (form["title"], form["body"], form["slug"]) == ("Newcomer", "Fresh words.", "taken")
    assert cast.anonymous.get("/posts/taken").location == "/posts/moved"


def test_an_existing_post_cannot_take_a_slug_that_leads_to_another_post(cast: Cast) -> None:
    slug_of(write_post(cast.author, title="Taken", body="Words."))
    rename(cast, "taken", "moved")
    other = slug_of(write_post(cast.other, title="Other post", body="Other words."))
    answer = edit_post(cast.other, other, slug="taken")
    assert answer.status_code == 422
    assert "still leads to it" in field_error(answer, "slug")
    assert cast.anonymous.get("/posts/taken").location == "/posts/moved"
    assert cast.anonymous.get(f"/posts/{other}").status_code == 200


def test_a_slug_made_from_a_title_steps_around_redirecting_slugs(cast: Cast) -> None:
    slug_of(write_post(cast.author, title="Same title", body="Words."))
    rename(cast, "same-title", "renamed")
    assert slug_of(write_post(cast.other, title="Same title", body="More.")) == "same-title-2"
    assert cast.anonymous.get("/posts/same-title").location == "/posts/renamed"
