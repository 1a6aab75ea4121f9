"""The editor: writing, editing, previewing and deleting posts through the pages an author uses.

Who may change what, the form's rules (errors beside their fields, nothing typed lost),
slugs, tags, the preview, the 409 page when two edits cross, and the trash button. Every
request goes through the test client; the database is read only to check what was stored.
Autosave, also part of the editor, is in tests/blog/test_autosave.py; the history of saves
in tests/blog/test_revisions.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from blog.conftest import (
    VISITORS,
    Cast,
    World,
    csrf_token,
    delete_post,
    edit_post,
    field_error,
    form_of,
    get_post,
    make_world,
    slug_of,
    write_post,
)
from blog.test_posts import LOGIN, drafts_rows, is_login_redirect
from pyproject.blog.db import get_database
from pyproject.blog.models import OldSlug, Post
from pyproject.lib import App
from pyproject.lib.testing import TestClient

# --- the shared world: alice's published post and her draft -----------------------------


@pytest.fixture(scope="module")
def world(shared_cast: Cast) -> World:
    return make_world(shared_cast)


# --- the empty editor --------------------------------------------------------------------


def test_the_new_post_form_is_empty_a_draft_and_sent_to_posts(world: World) -> None:
    page = world.cast.author.get("/posts/new")

    assert page.status_code == 200
    form = page.html.select_one("#post-form")
    assert form["action"] == "/posts"
    assert form["method"] == "post"
    values = page.form_values("#post-form")
    assert values["csrf_token"] == csrf_token(world.cast.author)
    assert values["status"] == "draft"
    for name in ("title", "body", "summary", "tags", "slug", "editing"):
        assert values[name] == "", name


def test_the_edit_form_holds_the_post_as_saved(world: World) -> None:
    page = world.cast.author.get(f"/posts/{world.published}/edit")

    values = page.form_values("#post-form")
    assert page.html.select_one("#post-form")["action"] == f"/posts/{world.published}/edit"
    assert (values["title"], values["body"]) == (
        "Alice in public",
        "Down the *rabbit hole*.\n\nAnd further down.",
    )
    assert (values["tags"], values["slug"], values["status"]) == (
        "Café, python",
        world.published,
        "published",
    )
    assert values["summary"] == ""  # made from the body, not typed: the field stays empty
    assert values["editing"] == world.published
    assert values["base_revision"] == str(get_post(world.cast.app, world.published).revision)


# Expected answer per visitor to each change, on posts made fresh for each case.
WRITES = [
    ("create", (LOGIN, 303, 303, 303)),
    ("edit published", (LOGIN, 303, 403, 303)),
    ("edit draft", (LOGIN, 303, 404, 303)),
    ("delete published", (LOGIN, 303, 403, 303)),
    ("delete draft", (LOGIN, 303, 404, 303)),
]


@pytest.mark.parametrize(
    ("action", "visitor", "expected"),
    [
        pytest.param(action, visitor, expected, id=f"{action} as {visitor}")
        for action, answers in WRITES
        for visitor, expected in zip(VISITORS, answers, strict=True)
    ],
)
def test_who_may_change_what(
    shared_cast: Cast, action: str, visitor: str, expected: int | str
) -> None:
    cast = shared_cast
    client = cast.client(visitor)
    verb, _, state = action.partition(" ")
    title = f"{action} by {visitor}"
    if verb == "create":
        data = {"csrf_token": csrf_token(client), "title": title, "body": "B", "status": "draft"}
        response = client.post("/posts", data=data)
        with get_database(cast.app).read() as db:
            created = db.scalar(select(Post).where(Post.title == title))
        assert (created is not None) == (expected == 303)
    else:
        status = "published" if state == "published" else "draft"
        slug = slug_of(write_post(cast.author, title=f"Target of {title}", status=status))
        if verb == "edit":
            data = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
            data.update(csrf_token=csrf_token(client), title=title)
            response = client.post(f"/posts/{slug}/edit", data=data)
            changed = get_post(cast.app, slug).title == title
        else:
            response = client.post(f"/posts/{slug}/delete", data={"csrf_token": csrf_token(client)})
            changed = get_post(cast.app, slug).deleted_at is not None
        assert changed == (expected == 303)
    if expected == LOGIN:
        assert is_login_redirect(response), (response.status_code, response.location)
    else:
        assert response.status_code == expected


def test_every_change_needs_the_csrf_token(world: World) -> None:
    author = world.cast.author
    edit = form_of(author.get(f"/posts/{world.published}/edit"), "#post-form")
    del edit["csrf_token"]
    assert author.post(f"/posts/{world.published}/edit", data=edit).status_code == 403
    assert author.post(f"/posts/{world.published}/delete", data={}).status_code == 403
    assert author.post("/posts", data={"title": "x", "body": "y"}).status_code == 403
    assert get_post(world.cast.app, world.published).title == "Alice in public"


# --- the editor's rules ------------------------------------------------------------------

TYPED = {
    "title": "A title with “quotes” & <angles>",
    "body": "First paragraph with **bold**.\n\nSecond paragraph.\n",
    "summary": "My own summary",
    "tags": "one, Two, drei",
    "slug": "",
    "status": "published",
}

BAD_INPUTS = [
    ("body", "A [link](https://) to fill in.", "placeholder address (“https://”)"),
    ("body", "See [this](url) and [that](<https://>).", "(“url”, “https://”)"),
    ("toc_mode", "sometimes", "Choose an automatic table of contents or none."),
    ("title", "t" * 201, "Title is too long"),
    ("title", "bell\x07title", "not allowed"),
    ("body", "", "Body is required."),
    ("body", "  \n\t \n", "Body is required."),
    ("body", "b" * 200_001, "Body is too long"),
    ("summary", "s" * 301, "Summary is too long"),
    ("tags", ", ".join(f"tag{n}" for n in range(11)), "at most 10 tags"),
    ("tags", "ok, " + "x" * 41, "at most 40 characters"),
    ("tags", "fine, 🐍", "needs at least one letter or digit"),
    ("slug", "Has Spaces", "lower-case letters"),
    ("slug", "double--hyphen", "lower-case letters"),
    ("slug", "-leading", "lower-case letters"),
    ("slug", "s" * 201, "Slug is too long"),
    ("slug", "new", "name of a page"),
    ("status", "archived", "Choose draft or published."),
    ("publish_at", "tomorrow", "Enter a date and time"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_INPUTS)
def test_a_form_with_errors_comes_back_as_typed(
    shared_cast: Cast, field: str, value: str, message: str
) -> None:
    typed = {**TYPED, field: value}
    before = count_posts(shared_cast.app)
    response = write_post(shared_cast.author, **typed)
    assert response.status_code == 422
    error = field_error(response, field)
    assert error is not None and message in error
    if field in ("status", "toc_mode"):  # radio buttons: the error sits in their fieldset
        fieldset = response.html.select_one(f"#e-{field}").find_parent("fieldset")
        assert fieldset.select(f'input[name="{field}"]')
    else:
        control = response.html.select_one(f"#f-{field}")
        assert control is not None and "e-" + field in control.get("aria-describedby", "")
    shown = response.form_values("#post-form")
    for name in ("title", "body", "summary", "tags", "slug"):
        assert shown[name] == typed[name], name
    if field != "status":
        assert shown["status"] == "published"
    assert count_posts(shared_cast.app) == before


def count_posts(app: App) -> int:
    with get_database(app).read() as db:
        return len(db.scalars(select(Post.id)).all())


def test_a_form_with_errors_on_edit_comes_back_as_typed(world: World) -> None:
    author = world.cast.author
    values = form_of(author.get(f"/posts/{world.published}/edit"), "#post-form")
    values.update(
        title="", body="New [link](https://)\n\nkept", tags="kept, tags", summary="kept summary"
    )
    response = author.post(f"/posts/{world.published}/edit", data=values)
    assert response.status_code == 422
    assert "placeholder address (“https://”)" in field_error(response, "body")
    shown = response.form_values("#post-form")
    for name in ("title", "body", "tags", "summary", "slug", "base_revision"):
        assert shown[name] == values[name]
    assert get_post(world.cast.app, world.published).title == "Alice in public"


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "t" * 200},
        {"body": "word " * 40_000},
        {"summary": "s" * 300},
        {"tags": ", ".join(f"tag{n}" for n in range(10))},
        {"tags": "a" * 40},
        {"tags": "same, Same, SAME, same ," + ", ".join(f"t{n}" for n in range(9))},
        {"slug": "s" * 200},
    ],
    ids=[
        "title-200",
        "body-200000",
        "summary-300",
        "ten-tags",
        "tag-40",
        "dupes-dont-count",
        "slug",
    ],
)
def test_the_limits_themselves_are_allowed(shared_cast: Cast, fields: dict[str, str]) -> None:
    response = write_post(shared_cast.author, **{"title": "At the limit", **fields})
    assert response.status_code == 303, response.html.select(".error")


def test_summary_comes_from_the_first_paragraph_when_left_empty(shared_cast: Cast) -> None:
    slug = slug_of(
        write_post(
            shared_cast.author,
            title="Summaries",
            body="The *first* paragraph says it.\n\nThe second does not.",
        )
    )
    assert get_post(shared_cast.app, slug).summary == "The first paragraph says it."
    custom = slug_of(write_post(shared_cast.author, title="Custom", summary="Mine."))
    assert get_post(shared_cast.app, custom).summary == "Mine."


def test_creating_a_post_says_so_and_shows_it(shared_cast: Cast) -> None:
    response = write_post(shared_cast.author, title="Shown", status="draft")
    page = shared_cast.author.get(response.location)
    assert page.status_code == 200
    assert "Draft saved." in page.text
    assert page.html.h1.get_text(strip=True) == "Shown"


def test_editing_changes_the_post_and_keeps_its_address(shared_cast: Cast) -> None:
    slug = slug_of(write_post(shared_cast.author, title="Before the edit", tags="old"))
    response = edit_post(shared_cast.author, slug, title="After the edit", tags="new tag")
    assert response.status_code == 303 and response.location == f"/posts/{slug}"
    page = shared_cast.anonymous.get(f"/posts/{slug}")
    assert page.html.h1.get_text(strip=True) == "After the edit"
    assert [a.get_text() for a in page.html.select("ul.tags a")] == ["new tag"]
    response = edit_post(shared_cast.admin, slug, body="An admin fixed a typo.")
    assert response.status_code == 303
    assert "An admin fixed a typo." in shared_cast.anonymous.get(f"/posts/{slug}").text


def test_a_draft_becomes_public_when_published(shared_cast: Cast) -> None:
    slug = slug_of(write_post(shared_cast.author, title="Soon public", status="draft"))
    assert shared_cast.anonymous.get(f"/posts/{slug}").status_code == 404
    assert get_post(shared_cast.app, slug).published_at is None
    assert edit_post(shared_cast.author, slug, status="published").status_code == 303
    assert shared_cast.anonymous.get(f"/posts/{slug}").status_code == 200
    assert get_post(shared_cast.app, slug).published_at is not None


# --- slugs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Café Déjà vu", "cafe-deja-vu"),
        ("Straße & Œuvre", "strasse-and-oeuvre"),
        ("  Hello,   World!  ", "hello-world"),
        ("Ærøskøbing Łódź", "aeroskobing-lodz"),
        ("日本語のタイトル", "post"),
        ("New", "new-2"),
    ],
)
def test_slugs_are_made_from_titles_in_ascii(shared_cast: Cast, title: str, slug: str) -> None:
    cast = shared_cast
    assert slug_of(write_post(cast.author, title=title)) == slug
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200


def test_slugs_made_from_titles_are_unique(shared_cast: Cast) -> None:
    slugs = [slug_of(write_post(shared_cast.author, title="Crème brûlée")) for _ in range(3)]
    assert slugs == ["creme-brulee", "creme-brulee-2", "creme-brulee-3"]
    other = slug_of(write_post(shared_cast.other, title="Crème brûlée", status="draft"))
    assert other == "creme-brulee-4"


def test_an_explicit_slug_is_used_lower_cased(shared_cast: Cast) -> None:
    assert slug_of(write_post(shared_cast.author, title="Any", slug="My-Own-Slug")) == "my-own-slug"


def test_a_taken_explicit_slug_is_a_form_error(world: World) -> None:
    typed = {**TYPED, "slug": world.published}
    response = write_post(world.cast.other, **typed)
    assert response.status_code == 422
    assert "Another post already uses this slug" in field_error(response, "slug")
    shown = response.form_values("#post-form")
    assert {name: shown[name] for name in ("title", "body", "summary", "tags", "slug")} == {
        name: typed[name] for name in ("title", "body", "summary", "tags", "slug")
    }
    taken = edit_post(world.cast.author, world.draft, slug=world.published)
    assert taken.status_code == 422 and field_error(taken, "slug")


# --- preview -----------------------------------------------------------------------------


def preview_values(client: TestClient) -> dict[str, str]:
    values = form_of(client.get("/posts/new"), "#post-form")
    values.update(
        title="Previewed title",
        body="Some **bold** text.\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))",
        summary="Typed summary",
        tags="alpha, beta",
        slug="previewed-slug",
        status="published",
    )
    return values


def test_preview_for_script_is_a_sanitised_fragment(world: World) -> None:
    author = world.cast.author
    response = author.post(
        "/posts/preview", data=preview_values(author), headers={"X-Requested-With": "fetch"}
    )
    assert response.status_code == 200
    assert "<html" not in response.text.lower() and "<form" not in response.text
    assert "<strong>bold</strong>" in response.text
    assert "<script" not in response.text and "javascript:" not in response.text


def test_preview_without_script_shows_the_whole_form_as_typed(world: World) -> None:
    author = world.cast.author
    values = preview_values(author)
    before = count_posts(world.cast.app)
    response = author.post("/posts/preview", data=values)
    assert response.status_code == 200
    preview = response.html.select_one("#preview")
    assert preview is not None and not preview.has_attr("hidden")
    assert preview.select_one("strong").get_text() == "bold"
    assert preview.select_one("script") is None
    shown = response.form_values("#post-form")
    for name in ("title", "body", "summary", "tags", "slug", "status"):
        assert shown[name] == values[name], name
    assert count_posts(world.cast.app) == before


def test_preview_while_editing_keeps_the_form_pointing_at_the_post(world: World) -> None:
    author = world.cast.author
    values = form_of(author.get(f"/posts/{world.published}/edit"), "#post-form")
    values.update(body="Changed *in preview*")
    response = author.post("/posts/preview", data=values)
    assert response.status_code == 200
    assert response.html.select_one("#post-form")["action"] == f"/posts/{world.published}/edit"
    assert response.form_values("#post-form")["body"] == "Changed *in preview*"
    assert "Changed" not in get_post(world.cast.app, world.published).body_md


# --- deleting ----------------------------------------------------------------------------


def test_deleting_takes_a_post_off_every_public_page(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Short-lived", tags="ephemeral"))
    assert cast.anonymous.get("/tags/ephemeral").status_code == 200
    response = delete_post(cast.author, slug)
    assert response.status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").status_code in (404, 410)
    for path in ("/", "/posts", "/authors/alice", "/tags"):
        assert "Short-lived" not in cast.anonymous.get(path).text
    assert "Short-lived" not in drafts_rows(cast.author)


def test_admins_may_delete_any_post(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.other, title="Bob's post"))
    assert delete_post(cast.admin, slug).status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").status_code in (404, 410)


# --- tags ----------------------------------------------------------------------------------


def tags_shown(client: TestClient, slug: str) -> list[str]:
    return [a.get_text() for a in client.get(f"/posts/{slug}").html.select("ul.tags a")]


def test_tags_typed_are_saved_once_each_and_shown_back_in_the_editor(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Tag typing", tags=" Zeta ,alpha, ALPHA,, zeta "))

    shown = tags_shown(cast.anonymous, slug)
    assert sorted(shown) == ["Zeta", "alpha"]
    assert form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")["tags"] == ", ".join(shown)


def test_tags_can_be_changed_and_all_taken_away(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Retagged", tags="first, second"))

    assert edit_post(cast.author, slug, tags="second, third").status_code == 303
    assert tags_shown(cast.anonymous, slug) == ["second", "third"]
    assert edit_post(cast.author, slug, tags="").status_code == 303
    assert tags_shown(cast.anonymous, slug) == []
    assert get_post(cast.app, slug).tag_names == ""


# --- slugs after the first save ------------------------------------------------------------


def test_a_draft_left_without_a_slug_gets_one_from_its_new_title(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Working title", status="draft"))

    saved = edit_post(cast.author, slug, title="Final title", slug="")

    assert saved.location == "/posts/final-title"
    assert cast.author.get(f"/posts/{slug}").status_code == 404  # a draft's slug is not kept


def test_a_published_post_left_without_a_slug_keeps_its_address(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Settled address"))

    saved = edit_post(cast.author, slug, title="A new title", slug="")

    assert saved.location == f"/posts/{slug}"
    assert get_post(cast.app, slug).title == "A new title"


def test_a_new_slug_for_a_published_post_keeps_the_old_one_redirecting(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Moving house"))

    saved = edit_post(cast.author, slug, slug="moved-house")

    assert saved.status_code == 303 and saved.location == "/posts/moved-house"
    old = cast.anonymous.get(f"/posts/{slug}")
    assert (old.status_code, old.location) == (301, "/posts/moved-house")
    hints = cast.author.get("/posts/moved-house/edit").html.select("#post-form p.hint code")
    assert [code.get_text() for code in hints] == [slug]
    with get_database(cast.app).read() as db:
        assert db.scalar(select(OldSlug.slug).where(OldSlug.slug == slug)) == slug


def test_an_old_slug_of_another_post_cannot_be_taken(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Original home"))
    assert edit_post(cast.author, slug, slug="original-home-2").status_code == 303

    taken = write_post(cast.other, title="Squatter", slug=slug)

    assert taken.status_code == 422
    assert field_error(taken, "slug")
    assert cast.anonymous.get(f"/posts/{slug}").location == "/posts/original-home-2"


# --- edits that cross ------------------------------------------------------------------------


def test_a_crossed_edit_shows_the_title_change_and_saves_on_the_second_try(
    shared_cast: Cast,
) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Crossed", body="The start."))
    mine = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    assert edit_post(cast.admin, slug, body="The start, fixed.").status_code == 303
    mine.update(title="Crossed paths", body="The start, and mine.")

    conflict = cast.author.post(f"/posts/{slug}/edit", data=mine)

    assert conflict.status_code == 409
    assert conflict.html.select_one('meta[name="robots"]')["content"] == "noindex"
    assert "Title: “Crossed” → “Crossed paths”" in conflict.html.select_one("main").get_text()
    kept = conflict.form_values("main form")
    assert (kept["title"], kept["body"]) == ("Crossed paths", "The start, and mine.")
    assert get_post(cast.app, slug).body_md == "The start, fixed."
    again = cast.author.post(conflict.html.select_one("main form")["action"], data=kept)
    assert again.status_code == 303
    assert get_post(cast.app, slug).title == "Crossed paths"


# --- what the editor says after a save -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"), [("published", "Post published."), ("draft", "Draft saved.")]
)
def test_a_save_says_what_it_did_on_the_page_it_leads_to(
    shared_cast: Cast, status: str, message: str
) -> None:
    saved = write_post(shared_cast.author, title=f"Said {status}", status=status)
    shown = shared_cast.author.get(saved.location)

    assert [p.get_text(strip=True) for p in shown.html.select("main .flash")] == [message]
    assert shared_cast.author.get(saved.location).html.select("main .flash") == []


def test_deleting_leads_to_the_trash_where_the_post_waits(shared_cast: Cast) -> None:
    cast = shared_cast
    slug = slug_of(write_post(cast.author, title="Into the bin"))

    deleted = delete_post(cast.author, slug)

    assert deleted.status_code == 303 and deleted.location == "/trash"
    trash = cast.author.get("/trash")
    assert "“Into the bin” is in the trash." in trash.html.select_one("main .flash").get_text()
    assert "Into the bin" in trash.html.select_one("main table").get_text()
    assert get_post(cast.app, slug).deleted_at is not None
