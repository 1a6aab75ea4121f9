"""The header and footer menus (#17): /admin/navigation without JavaScript, shown at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from blog.conftest import Cast, field_error, form_of, make_blog_app, write_post
from blog.test_pages import page_slug, write_page
from pyproject.blog.db import get_database
from pyproject.lib.testing import TestClient, TestResponse

ADD_FORM = "#add-link-form"


def add_link(client: TestClient, **fields: str) -> TestResponse:
    values = form_of(client.get("/admin/navigation"), ADD_FORM)
    values.update(fields)
    return client.post("/admin/navigation", data=values)


def press(client: TestClient, label: str, action: str) -> TestResponse:
    """Press Move up / Move down / Remove beside the link labelled `label`."""
    page = client.get("/admin/navigation")
    for item in page.html.select("li.nav-link"):
        if item.select_one(".nav-link-label strong").get_text() == label:
            button_form = next(
                f for f in item.select("form") if f.select_one(f'input[value="{action}"]')
            )
            values = {i["name"]: i["value"] for i in button_form.select("input")}
            return client.post("/admin/navigation", data=values)
    raise AssertionError(f"no link {label!r}")


def header(client: TestClient, path: str = "/") -> list[tuple[str, str, str | None]]:
    """Give the header menu's links (label, href, aria-current), "Sign in" aside."""
    links = client.get(path).html.select(".site-nav > a")
    return [
        (a.get_text(), a["href"], a.get("aria-current")) for a in links if a["href"] != "/login"
    ]


def page_id(client: TestClient, title: str) -> str:
    options = client.get("/admin/navigation").html.select("#f-page option")
    return next(o["value"] for o in options if o.get_text() == title)


def test_links_to_a_page_a_tag_the_archive_and_an_address(cast: Cast) -> None:
    page_slug(write_page(cast.author, title="About"))
    write_post(cast.author, title="Snakes", tags="python")
    about = page_id(cast.admin, "About")
    for fields in (
        {"label": "About", "target_kind": "page", "page": about},
        {"label": "Python", "target_kind": "tag", "tag": "python"},
        {"label": "Archive", "target_kind": "archive"},
        {"label": "Code", "target_kind": "url", "url": "https://code.example/ada"},
        {"label": "Now", "target_kind": "url", "url": "/now"},
    ):
        assert add_link(cast.admin, **fields).status_code == 303, fields
    assert header(cast.anonymous, "/about") == [
        ("About", "/about", "page"),
        ("Python", "/tags/python", None),
        ("Archive", "/posts", None),
        ("Code", "https://code.example/ada", None),
        ("Now", "/now", None),
    ]
    assert ("Archive", "/posts", "page") in header(cast.anonymous, "/posts")


def test_move_and_remove_without_javascript(cast: Cast) -> None:
    for label in ("One", "Two", "Three"):
        add_link(cast.admin, label=label, target_kind="archive")
    assert press(cast.admin, "Three", "up").status_code == 303
    assert [t for t, _, _ in header(cast.anonymous)] == ["One", "Three", "Two"]
    press(cast.admin, "One", "down")
    assert [t for t, _, _ in header(cast.anonymous)] == ["Three", "One", "Two"]
    press(cast.admin, "Three", "up")  # already first: stays
    press(cast.admin, "One", "remove")
    assert [t for t, _, _ in header(cast.anonymous)] == ["Three", "Two"]


def test_reorder_takes_the_whole_new_order(cast: Cast) -> None:
    for label in ("A", "B", "C"):
        add_link(cast.admin, label=label, target_kind="archive")
    page = cast.admin.get("/admin/navigation")
    form = page.html.select_one('form.nav-reorder[data-menu="header"]')
    values = {i["name"]: i["value"] for i in form.select("input")}
    ids = values["order"].split(",")
    values["order"] = ",".join(reversed(ids))
    assert cast.admin.post("/admin/navigation", data=values).status_code == 303
    assert [t for t, _, _ in header(cast.anonymous)] == ["C", "B", "A"]
    values["order"] = ids[0]  # not the menu's links: refused, nothing changes
    assert cast.admin.post("/admin/navigation", data=values).status_code == 400
    assert [t for t, _, _ in header(cast.anonymous)] == ["C", "B", "A"]


def test_footer_menu(cast: Cast) -> None:
    add_link(cast.admin, menu="footer", label="Colophon", target_kind="url", url="/colophon")
    footer = cast.anonymous.get("/").html.select(".footer-nav a")
    assert [(a.get_text(), a["href"]) for a in footer] == [("Colophon", "/colophon")]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"target_kind": "url", "url": "javascript:alert(1)"}, "url", "http(s) address"),
        ({"target_kind": "url", "url": "//evil.example/"}, "url", "http(s) address"),
        ({"target_kind": "url", "url": "/\\evil.example/"}, "url", "http(s) address"),
        ({"target_kind": "url", "url": ""}, "url", "required"),
        ({"target_kind": "page", "page": "99999"}, "page", "pages"),
        ({"target_kind": "tag", "tag": "no-such-tag"}, "tag", "tags"),
        ({"target_kind": "elsewhere"}, "target_kind", "Choose"),
        ({"target_kind": "archive", "menu": "sidebar"}, "menu", "header or the footer"),
        ({"target_kind": "archive", "label": ""}, "label", "required"),
        ({"target_kind": "archive", "label": "x" * 81}, "label", "too long"),
    ],
)
def test_bad_links_are_422_keeping_what_was_typed(
    shared_cast: Cast, fields: dict[str, str], field: str, message: str
) -> None:
    typed = {"label": "Kept label", **fields}
    answer = add_link(shared_cast.admin, **typed)
    assert answer.status_code == 422
    assert message in (field_error(answer, field) or "")
    assert answer.html.select_one("#f-label")["value"] == typed["label"]


def test_a_change_shows_on_another_worker_at_once(cast: Cast, tmp_path: Path) -> None:
    other = make_blog_app(tmp_path / "w2", database_url=str(get_database(cast.app).engine.url))
    reader = other.test_client()
    reader.get("/")
    add_link(cast.admin, label="Elsewhere", target_kind="archive")
    assert ("Elsewhere", "/posts", None) in header(reader)


def test_a_page_link_follows_the_pages_new_slug(cast: Cast) -> None:
    slug = page_slug(write_page(cast.author, title="Hello", status="draft"))
    add_link(cast.admin, label="Hi", target_kind="page", page=page_id(cast.admin, "Hello"))
    values = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    values.update(slug="greetings", status="published")
    assert cast.author.post(f"/posts/{slug}/edit", data=values).status_code == 303
    assert ("Hi", "/greetings", None) in header(cast.anonymous)


def test_only_admins_edit_menus(cast: Cast) -> None:
    assert cast.author.get("/admin/navigation").status_code == 403
    assert cast.anonymous.get("/admin/navigation").status_code == 303
    values = form_of(cast.admin.get("/admin/navigation"), ADD_FORM)
    values.update(label="Mine", target_kind="archive")
    assert cast.author.post("/admin/navigation", data=values).status_code == 403
    assert header(cast.anonymous)[0][0] == "Archive"  # the default menu: nothing added
