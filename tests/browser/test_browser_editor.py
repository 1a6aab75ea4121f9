"""The writing desk (#23) in Chromium: every editor behaviour, with and without script.

Toolbar actions and shortcuts insert through the browser's editing commands, so one
Ctrl+Z takes each back; a link without an address selects the address; a placeholder
address is refused on save; one recovery banner offers the newest copy; leaving with
unsaved text asks first; the preview follows the text; a phone gets Write/Preview. axe-core
finds nothing on the editor or the new reader pieces, in both schemes; screenshots of the
editor and a long post are written in light and dark, phone and desktop.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    VIEWPORTS,
    Browsing,
    Screens,
    fill_post,
    publish_post,
    save,
)
from tests.browser.test_browser_accessibility import describe, run_axe

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

# the button's action (data-md): what a selected "word" becomes
TOOLBAR = {
    "bold": "**word**",
    "italic": "_word_",
    "heading": "## word",
    "quote": "> word",
    "code": "`word`",
    "list": "- word",
    "numbered": "1. word",
}


def editor(browse: Browsing, *, javascript: bool = True, **options: object) -> Page:
    page = browse.context("author", signed_in=True, javascript=javascript, **options).new_page()
    page.goto("/posts/new")
    return page


def body_value(page: Page) -> str:
    return page.locator("#f-body").input_value()


def select_all_of_body(page: Page, text: str) -> None:
    body = page.locator("#f-body")
    body.fill(text)
    body.focus()
    page.keyboard.press("Control+A")


@pytest.mark.parametrize(("name", "markdown"), TOOLBAR.items())
def test_each_toolbar_action_formats_the_selection_and_ctrl_z_undoes_it(
    browse: Browsing, name: str, markdown: str
) -> None:
    page = editor(browse)
    select_all_of_body(page, "word")
    toolbar = page.get_by_role("toolbar", name="Formatting")
    toolbar.locator(f'button[data-md="{name}"]').click()
    expect(page.locator("#f-body")).to_have_value(markdown)
    page.locator("#f-body").press("Control+z")
    expect(page.locator("#f-body")).to_have_value("word")
    browse.assert_clean()


def test_table_footnote_and_code_block_insert_in_one_undoable_step(browse: Browsing) -> None:
    page = editor(browse)
    toolbar = page.get_by_role("toolbar", name="Formatting")
    body = page.locator("#f-body")
    body.fill("First line.")
    body.focus()
    page.keyboard.press("Control+End")
    toolbar.get_by_role("button", name="Table").click()
    assert "| :-- | --: |" in body_value(page)
    body.press("Control+z")
    expect(body).to_have_value("First line.")

    page.keyboard.press("Control+Home")
    page.keyboard.press("End")
    toolbar.get_by_role("button", name="Footnote").click()
    expect(body).to_have_value("First line.[^1]\n\n[^1]: Footnote text.\n")
    body.press("Control+z")
    expect(body).to_have_value("First line.")
    page.keyboard.press("Control+End")
    toolbar.get_by_role("button", name="Footnote").click()
    page.keyboard.type("The source.")  # the note's text was selected
    expect(body).to_have_value("First line.[^1]\n\n[^1]: The source.\n")
    browse.assert_clean()


def test_shortcuts_bold_italic_and_link(browse: Browsing) -> None:
    page = editor(browse)
    body = page.locator("#f-body")
    select_all_of_body(page, "word")
    body.press("Control+b")
    expect(body).to_have_value("**word**")
    body.press("Control+z")
    page.keyboard.press("Control+A")
    body.press("Control+i")
    expect(body).to_have_value("_word_")
    body.press("Control+z")
    page.keyboard.press("Control+A")
    body.press("Control+k")
    # The address is selected: typing replaces it.
    page.keyboard.type("https://example.org/")
    expect(body).to_have_value("[word](https://example.org/)")
    browse.assert_clean()


def test_a_link_without_an_address_is_refused_on_save_naming_it(
    browse: Browsing, screens: Screens
) -> None:
    page = editor(browse)
    fill_post(page, title="Placeholder link", body="Read ")
    page.locator("#f-body").focus()
    page.keyboard.press("Control+End")
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page.locator("#f-body")).to_have_value("Read [link text](https://)")
    with page.expect_response(lambda r: r.request.method == "POST" and "/posts" in r.url) as answer:
        save(page)
    assert answer.value.status == 422
    expect(page.locator("#e-body")).to_contain_text("placeholder address (“https://”)")
    expect(page.locator("#f-body")).to_have_value("Read [link text](https://)")
    screens.shoot(page, "placeholder-refused")
    browse.assert_clean()


def test_the_preview_follows_the_text_beside_it(browse: Browsing, screens: Screens) -> None:
    page = editor(browse)
    page.get_by_label("Title").fill("Live preview")
    body = page.locator("#f-body")
    body.fill("# Heading\n\nSome *emphasis* here.")
    preview = page.locator("#preview-body")
    expect(preview.locator("em")).to_have_text("emphasis", timeout=5_000)
    body.press("Control+End")
    body.press_sequentially(" And **more**.")
    expect(preview.locator("strong")).to_have_text("more", timeout=5_000)
    box_text, box_preview = body.bounding_box(), page.locator("#preview").bounding_box()
    assert box_preview["x"] > box_text["x"] + box_text["width"] - 1, "the preview is not beside"
    expect(page.locator("#word-count")).to_have_text("6 words")
    screens.shoot(page, "editor")
    browse.assert_clean()


def test_a_phone_gets_write_and_preview_one_at_a_time(browse: Browsing) -> None:
    page = editor(browse, viewport=VIEWPORTS["phone"])
    settings = page.locator("#desk-settings")
    expect(settings).not_to_have_attribute("open", "")  # folded on a phone
    page.locator("#f-body").fill("Hello *phone*.")
    expect(page.locator("#preview")).to_be_hidden()
    page.get_by_role("button", name="Preview", exact=True).first.click()
    expect(page.locator("#preview-body em")).to_have_text("phone")
    expect(page.locator("#f-body")).to_be_hidden()
    page.locator("#tab-write").click()
    expect(page.locator("#f-body")).to_be_visible()
    expect(page.locator("#preview")).to_be_hidden()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= VIEWPORTS["phone"]["width"], "the editor scrolls sideways on a phone"
    browse.assert_clean()


def test_leaving_with_unsaved_text_asks_first(browse: Browsing) -> None:
    page = editor(browse)
    page.locator("#f-body").press_sequentially("Words not kept anywhere yet")
    asked: list[str] = []

    def answer(dialog: object) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", answer)
    page.get_by_role("link", name="Archive").click()
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    assert page.url.endswith("/posts/new")
    browse.assert_clean()


def test_one_recovery_banner_offers_this_browsers_newer_copy(browse: Browsing) -> None:
    page = editor(browse)
    fill_post(page, title="Recovered", body="Saved words.")
    save(page)
    page.wait_for_url(re.compile(r"/posts/recovered$"))
    page.goto("/posts/recovered/edit")
    body = page.locator("#f-body")
    body.press("Control+End")
    body.press_sequentially(" Server words.")
    expect(page.locator("#autosave-status")).to_contain_text("Saved at", timeout=15_000)
    # Newer than the autosave: words this browser alone has.
    body.press_sequentially(" Local words.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.reload()
    banner = page.locator("#recovery")
    expect(banner).to_be_visible()
    expect(banner.locator("#local-copy")).to_be_visible()
    expect(banner.locator("#recovery-server")).to_be_hidden()
    expect(banner.locator("#local-copy-newer")).to_be_visible()
    expect(page.locator("#recovery-diff-local ins")).to_have_text(" Server words. Local words.")
    assert page.locator(".recovery").count() == 1
    banner.get_by_role("button", name="Restore it").click()
    expect(body).to_have_value("Saved words. Server words. Local words.")
    browse.assert_clean()


def test_without_script_the_editor_still_writes_and_saves(browse: Browsing) -> None:
    page = editor(browse, javascript=False)
    expect(page.locator(".md-toolbar")).to_be_hidden()
    expect(page.locator("#desk-settings")).to_have_attribute("open", "")
    fill_post(page, title="", body="A note without a title, written without script.")
    save(page)
    page.wait_for_url(re.compile(r"/posts/a-note-without-a-title-written-without-script$"))
    expect(page.locator("h1.visually-hidden")).to_have_text(
        "A note without a title, written without script."
    )
    browse.assert_clean()


LONG_POST = "\n\n".join(
    [
        "An opening paragraph that says what this essay is about, before any contents.",
        *(f"## Section {n}\n\n" + "Words that read like an essay. " * 40 for n in range(1, 5)),
        "| Left | Centre | Right |\n| :-- | :-: | --: |\n| a | b | 1.00 |\n| cell | c | 22.50 |",
        "```python\n" + "value = compute(" + ", ".join(f"arg{n}" for n in range(40)) + ")\n```",
        "> A quotation worth keeping.\n\nA last line with a footnote.[^1]\n\n[^1]: The note.",
    ]
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_editor_and_a_long_post_have_no_axe_violations(
    browse: Browsing, axe_source: str, screens: Screens, scheme: str
) -> None:
    author = browse.context("author", signed_in=True, color_scheme=scheme).new_page()
    path = publish_post(author, title=f"A long essay {scheme}", body=LONG_POST, tags="essays")
    reader = browse.context("reader", color_scheme=scheme).new_page()
    for device, viewport in VIEWPORTS.items():
        for page, where in ((author, "/posts/new"), (reader, path), (author, path)):
            page.set_viewport_size(viewport)
            page.goto(where)
            if where == "/posts/new" and device == "desktop":
                page.locator("#f-body").fill(LONG_POST)
                expect(page.locator("#preview-body h2").first).to_be_visible(timeout=5_000)
            violations = run_axe(page, axe_source)["violations"]
            assert not violations, f"{where} {device} {scheme}:\n{describe(violations)}"
    # One table of contents, after the opening paragraph (the essay is under 1,200 words).
    reader.goto(path)
    assert reader.locator("nav.toc").count() == 1
    first = reader.locator(".post-body > *").first
    expect(first).to_have_text(re.compile("^An opening paragraph"))
    expect(reader.locator(".post-body td[align=right]").first).to_have_css("text-align", "right")
    # Code blocks name their language and offer a copy button (site.js).
    bar = reader.locator(".post-body .code-bar").first
    expect(bar.locator("span")).to_have_text("python")
    expect(bar.get_by_role("button", name="Copy the code (python)")).to_be_visible()
    if scheme == "light":
        screens.shoot(reader, "long-post")
        author.goto("/posts/new")
        author.locator("#f-body").fill(LONG_POST)
        author.get_by_label("Title").fill("A long essay")
        expect(author.locator("#preview-body h2").first).to_be_visible(timeout=5_000)
        screens.shoot(author, "editor-long")
    browse.assert_clean()
