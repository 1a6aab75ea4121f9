"""Site settings in the browser (#17): /admin/settings, checked, logged, applied at once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from blog.conftest import Cast, field_error, form_of, make_blog_app, make_cast, slug_of, write_post
from blog.test_media import upload
from pyproject.blog.db import get_database
from pyproject.blog.settings import contrast_ratio, css_problems, is_language_tag, site_settings
from pyproject.lib.testing import TestClient, TestResponse

FORM = "#settings-form"


def settings_form(client: TestClient) -> dict[str, str]:
    return form_of(client.get("/admin/settings"), FORM)


def change_settings(client: TestClient, **fields: str) -> TestResponse:
    """Fill in /admin/settings as shown, change `fields`, and save."""
    values = settings_form(client)
    values.update(fields)
    return client.post("/admin/settings", data=values)


def typed(page: TestResponse, name: str) -> str:
    """Give what a field of the settings form shows (input value or textarea text)."""
    element = page.html.select_one(f"#f-{name}")
    if element.name == "textarea":
        return element.get_text()
    if element.name == "select":
        chosen = element.select_one("option[selected]")
        return chosen["value"] if chosen is not None else ""
    return element.get("value", "")


# --- defaults and saving -----------------------------------------------------------------


def test_the_environment_gives_the_defaults(tmp_path: Path) -> None:
    app = make_blog_app(
        tmp_path, overrides={"SITE_NAME": "From Env", "SITE_LANGUAGE": "fr", "POSTS_PER_PAGE": 3}
    )
    cast = make_cast(app)
    values = settings_form(cast.admin)
    assert (values["title"], values["language"], values["posts_per_page"]) == (
        "From Env",
        "fr",
        "3",
    )
    home = cast.anonymous.get("/")
    assert home.html.select_one("html")["lang"] == "fr"
    assert "From Env" in home.html.select_one(".site-name").get_text()


def test_a_saved_setting_shows_on_every_reader_page_at_once(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="First words"))
    before = cast.anonymous.get("/")  # kept by the page cache
    assert before.status_code == 200

    saved = change_settings(
        cast.admin,
        title="Field Notes",
        description="Notes from the field.",
        language="pt-BR",
        intro="Welcome to *my* notes.",
        footer="Written by **Ada**.",
        social_links="https://mastodon.social/@ada\nhttps://github.com/ada",
    )
    assert saved.status_code == 303
    for path in ("/", f"/posts/{slug}", "/posts", "/tags"):
        page = cast.anonymous.get(path)
        assert page.html.select_one("html")["lang"] == "pt-BR", path
        assert "Field Notes" in page.html.title.string, path
        assert page.html.select_one('meta[name="description"]') is not None
        assert page.html.select_one(".site-footer strong").get_text() == "Ada", path
        me = [a["href"] for a in page.html.select('a[rel="me"]')]
        assert me == ["https://mastodon.social/@ada", "https://github.com/ada"], path
    home = cast.anonymous.get("/")
    assert home.html.select_one(".home-intro em").get_text() == "my"
    assert home.html.select_one('meta[name="description"]')["content"] == "Notes from the field."
    feed = cast.anonymous.get("/feed.atom").text
    assert "<title>Field Notes</title>" in feed
    assert "<subtitle>Notes from the field.</subtitle>" in feed


def test_every_change_is_logged_with_who_when_before_and_after(cast: Cast) -> None:
    assert change_settings(cast.admin, title="New Name", posts_per_page="7").status_code == 303
    page = cast.admin.get("/admin/settings")
    rows = [
        [cell.get_text(strip=True) for cell in row.select("td")]
        for row in page.html.select(".settings-changes tbody tr")
    ]
    by_setting = {row[2]: row for row in rows}
    assert by_setting["Site title"][1:] == ["Ada Admin", "Site title", "PyProject", "New Name"]
    assert by_setting["Posts per page"][3:] == ["10", "7"]
    assert all(row[0] for row in rows)  # when

    again = change_settings(cast.admin)  # nothing changed: nothing logged
    assert again.status_code == 303
    assert len(cast.admin.get("/admin/settings").html.select(".settings-changes tbody tr")) == 2


def test_a_change_reaches_another_worker_on_the_same_database(cast: Cast, tmp_path: Path) -> None:
    # A second app on the same database file: another gunicorn worker, or another host.
    url = str(get_database(cast.app).engine.url)
    other = make_blog_app(tmp_path / "other", database_url=url)
    reader = other.test_client()
    assert "PyProject" in reader.get("/").html.title.string
    assert change_settings(cast.admin, title="Seen Everywhere").status_code == 303
    assert "Seen Everywhere" in reader.get("/").html.title.string
    assert site_settings(other).title == "Seen Everywhere"


def test_posts_per_page_and_time_zone_apply(cast: Cast) -> None:
    for n in range(3):
        write_post(cast.author, title=f"Post {n}")
    assert (
        change_settings(cast.admin, posts_per_page="2", timezone="Asia/Kolkata").status_code == 303
    )
    home = cast.anonymous.get("/")
    assert len(home.html.select(".post-item")) == 2
    assert cast.anonymous.get("/?page=2").status_code == 200
    title = home.html.select_one(".post-item time")["title"]
    assert title.endswith("IST"), title


# --- refusals ----------------------------------------------------------------------------

REFUSED = [
    ("timezone", "Mars/Olympus_Mons", "not a known time zone"),
    ("timezone", "../../etc/passwd", "not a known time zone"),
    ("language", "english!", "BCP 47"),
    ("language", "e", "BCP 47"),
    ("language", "en_US", "BCP 47"),
    ("posts_per_page", "0", "from 1 to 100"),
    ("posts_per_page", "101", "from 1 to 100"),
    ("posts_per_page", "ten", "from 1 to 100"),
    ("posts_per_page", "-3", "from 1 to 100"),
    ("social_links", "javascript:alert(1)", "not an http(s) address"),
    ("social_links", "ftp://example.com/me", "not an http(s) address"),
    ("social_links", "https://ok.example/me\nmastodon.social/@ada", "not an http(s) address"),
    ("title", "", "Site title is required"),
    ("title", "x" * 101, "too long"),
    ("accent", "blue", "not a colour"),
    ("accent", "#ffff00", "1.07:1"),
    ("accent_dark", "#1a56b8", ":1 against the dark scheme"),
    ("logo", "999", "media library"),
    ("favicon", "not-a-number", "media library"),
    ("second_factor", "sometimes", "second factor"),
    ("smart_punctuation", "maybe", "on or off"),
]


@pytest.mark.parametrize(("name", "value", "message"), REFUSED)
def test_bad_input_is_422_beside_its_field_keeping_what_was_typed(
    shared_cast: Cast, name: str, value: str, message: str
) -> None:
    cast = shared_cast  # nothing is saved: one blog for every case
    answer = change_settings(cast.admin, **{"title": "Kept Title", name: value})
    assert answer.status_code == 422
    assert message in (field_error(answer, name) or "")
    if name not in ("logo", "favicon", "second_factor", "smart_punctuation"):  # selects
        assert typed(answer, name).strip() == value.strip()
    if name != "title":
        assert typed(answer, "title") == "Kept Title"
    assert "PyProject" in cast.anonymous.get("/").html.title.string  # nothing saved


def test_an_accent_refusal_gives_the_measured_ratio(shared_cast: Cast) -> None:
    cast = shared_cast
    answer = change_settings(cast.admin, accent="#777777")
    error = field_error(answer, "accent")
    assert f"{contrast_ratio('#777777', '#ffffff'):.2f}:1" in error
    assert "4.5:1" in error


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(
    "tag", ["en", "pt-BR", "zh-Hant-TW", "sr-Latn-RS", "es-419", "de-CH-1996", "x-private"]
)
def test_well_formed_language_tags_are_accepted(tag: str) -> None:
    assert is_language_tag(tag)


# --- custom CSS --------------------------------------------------------------------------

HOSTILE_CSS = [
    ("@import url(https://evil.example/x.css);", "Line 1: @import"),
    ('@import "local.css";', "Line 1: @import"),
    ("a {}\n@media print { @import 'x.css'; }", "Line 2: @import"),
    ("body {\n  background: url(https://evil.example/t.png);\n}", "Line 2: url("),
    ("body { background: url('//evil.example/t.png') }", "Line 1: url("),
    ("body { background: url(HTTP://evil.example/t.png) }", "Line 1: url("),
    ("body { background: url(/\\\\evil.example/t.png) }", "Line 1: url("),
    ("body { background: url('/\t/evil.example/t.png') }", "Line 1: url("),
    ("\n\n@font-face { font-family: x; src: url(https://fonts.example/x.woff2); }", "Line 3"),
    ("a { background: image-set('https://evil.example/a.png' 1x) }", "Line 1: url("),
    ("a { background: -webkit-image-set('//evil.example/a.png' 1x) }", "Line 1: url("),
    ("a { content: 'unterminated\n}", "cannot be read"),
    ("a { background: url(https\\3a //evil.example/x) }", "Line 1: url("),
]


@pytest.mark.parametrize(("css", "message"), HOSTILE_CSS)
def test_custom_css_that_would_contact_another_host_is_refused_naming_the_line(
    shared_cast: Cast, css: str, message: str
) -> None:
    cast = shared_cast
    assert any(message in problem for problem in css_problems(css)), css_problems(css)
    answer = change_settings(cast.admin, custom_css=css)
    assert answer.status_code == 422
    assert message in field_error(answer, "custom_css")
    # (HTML drops a textarea's first newline: the rest comes back as typed)
    assert typed(answer, "custom_css").replace("\r\n", "\n") == css.removeprefix("\n")


def test_custom_css_over_64_kb_is_refused(shared_cast: Cast) -> None:
    cast = shared_cast
    css = "a { color: red; }\n" * 4000  # 72,000 bytes
    answer = change_settings(cast.admin, custom_css=css)
    assert answer.status_code == 422
    assert "65,536" in field_error(answer, "custom_css")


def test_custom_css_and_accent_are_one_fingerprinted_stylesheet(cast: Cast) -> None:
    def stylesheet_url() -> str:
        links = cast.anonymous.get("/").html.select('link[rel="stylesheet"]')
        return links[-1]["href"]

    first = stylesheet_url()
    css = "/* ours */\n.post-item { border-left: 3px solid var(--accent); }\n"
    css += "body { background: url(/static/img/favicon.svg), url(data:image/gif;base64,R0lG); }"
    assert change_settings(cast.admin, accent="#0b5d1e", custom_css=css).status_code == 303
    second = stylesheet_url()
    assert second != first and second.startswith("/site-style/")
    served = cast.anonymous.get(second)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("text/css")
    assert "immutable" in served.headers["Cache-Control"]
    assert "--accent: #0b5d1e" in served.text
    assert ".post-item { border-left: 3px solid var(--accent); }" in served.text
    # No page carries inline style: the policy needs no 'unsafe-inline'.
    home = cast.anonymous.get("/")
    assert "unsafe-inline" not in home.headers["Content-Security-Policy"]
    assert not home.html.select("style")
    # An old page's link still leads to the current sheet; junk is 404.
    old = cast.anonymous.get(first)
    assert old.status_code == 302 and old.location.endswith(second)
    assert cast.anonymous.get("/site-style/not-a-hash.css").status_code == 404


# --- pictures ----------------------------------------------------------------------------


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    return out.getvalue()


def test_logo_and_favicon_come_from_the_media_library(cast: Cast) -> None:
    answer = upload(cast.admin, [("logo.png", png("navy"))], alt="Logo", as_json=True)
    assert answer.status_code == 200, answer.text
    url = answer.json["files"][0]["url"]
    page = cast.admin.get("/admin/settings")
    options = {o.get_text(): o["value"] for o in page.html.select("#f-logo option")}
    media_id = next(value for label, value in options.items() if label.startswith("logo.png"))
    assert change_settings(cast.admin, logo=media_id, favicon=media_id).status_code == 303
    home = cast.anonymous.get("/")
    logo = home.html.select_one(".site-name img")
    icon = home.html.select_one('link[rel="icon"]')
    assert logo["src"] == icon["href"] == url
    assert icon["type"] == "image/png"
    assert cast.anonymous.get(logo["src"]).status_code == 200


# --- who may -----------------------------------------------------------------------------


def test_an_admin_finds_settings_menus_pages_and_series_from_the_header(cast: Cast) -> None:
    header = cast.admin.get("/").html.select_one(".site-nav")
    settings = header.find("a", string="Settings")["href"]
    page = cast.admin.get(settings)
    links = {a.get_text(): a["href"] for a in page.html.select("main a")}
    assert links["the header and footer menus"] == "/admin/navigation"
    assert links["write a page"] == "/pages/new"
    assert header.find("a", string="Series")["href"] == "/series"
    assert cast.author.get("/").html.select_one(".site-nav").find("a", string="Settings") is None


def test_only_admins_reach_the_settings(cast: Cast) -> None:
    assert cast.author.get("/admin/settings").status_code == 403
    values = settings_form(cast.admin)
    assert cast.author.post("/admin/settings", data={**values, "title": "Mine"}).status_code == 403
    anonymous = cast.anonymous.get("/admin/settings")
    assert anonymous.status_code == 303
    assert anonymous.location.startswith("/login")
    assert "PyProject" in cast.anonymous.get("/").html.title.string
