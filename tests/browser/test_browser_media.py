"""Pictures in the editor, in a real Chromium against a real gunicorn (#15).

Without JavaScript the editor's upload form opens the media library in a new tab with the
picture's Markdown; with it, the form, dropping a file onto the body and pasting one all
upload with a progress bar and put ![alt](url) where the cursor is.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import Browsing, fill_post, png

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.support import Screens

pytestmark = pytest.mark.browser
PICTURE_MARKDOWN = re.compile(r"!\[[^\]]*\]\(/media/files/[0-9a-f]{64}/original\.png\)")


def expect(target):  # imported late: collecting this file must not need playwright
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def picture_file(tmp_path, name: str, shade: int):
    path = tmp_path / name
    path.write_bytes(png(90, 60, (shade, 40, 200)))
    return path


def hand_over(page: Page, event: str, shade: int, name: str) -> None:
    """Drop or paste a PNG onto the body, as the browser does with a real file."""
    data = base64.b64encode(png(80, 50, (shade, 120, 30))).decode()
    page.evaluate(
        """([event, data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            const body = document.getElementById("f-body");
            body.focus();
            const how = {bubbles: true, cancelable: true};
            const fired = event === "paste"
                ? new ClipboardEvent("paste", {...how, clipboardData: transfer})
                : new DragEvent("drop", {...how, dataTransfer: transfer});
            body.dispatchEvent(fired);
        }""",
        [event, data, name],
    )


def test_without_script_the_upload_opens_the_library_with_the_markdown(
    browse: Browsing, screens: Screens, tmp_path
) -> None:
    context = browse.context("author", signed_in=True, javascript=False)
    page = context.new_page()
    page.goto("/posts/new")
    page.get_by_label("Add pictures").set_input_files(picture_file(tmp_path, "plain.png", 10))
    page.locator("#f-upload-alt").fill("A blue plain")
    with context.expect_page() as opened:
        page.get_by_role("button", name="Upload", exact=True).click()
    library = opened.value
    library.wait_for_load_state()
    expect(library).to_have_url(re.compile(r"/media$"))
    markdown = library.locator(".media-markdown").first
    expect(markdown).to_have_value(re.compile(r"^!\[A blue plain\]\(/media/files/"))
    screens.shoot(library, "library")
    browse.assert_clean()


def test_with_script_the_form_drop_and_paste_insert_markdown_at_the_cursor(
    browse: Browsing, screens: Screens, tmp_path
) -> None:
    page = browse.context("author", signed_in=True).new_page()
    page.goto("/posts/new")
    fill_post(page, title="Pictures by script", body="First words.")
    body = page.locator("#f-body")
    page.get_by_label("Add pictures").set_input_files(picture_file(tmp_path, "form.png", 60))
    page.locator("#f-upload-alt").fill("From the form")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(body).to_have_value(re.compile(r"!\[From the form\]\(/media/files/"))
    expect(page.locator("#missing-alt")).to_be_hidden()
    expect(page.locator("#upload-progress progress").first).to_have_attribute("value", "100")

    page.locator("#f-upload-alt").fill("")
    hand_over(page, "drop", 120, "dropped.png")
    expect(page.locator("#upload-progress li")).to_have_count(2)
    expect(page.locator("#upload-progress .warning")).to_have_count(1)
    hand_over(page, "paste", 180, "pasted.png")
    expect(page.locator("#upload-progress li")).to_have_count(3)
    expect(page.locator("#upload-progress .warning")).to_have_count(2)
    expect(page.locator("#missing-alt")).to_be_visible()
    value = body.input_value()
    assert value.startswith("First words.")
    assert len(PICTURE_MARKDOWN.findall(value)) == 3, value
    screens.shoot(page, "inserted")

    page.get_by_role("radio", name="Published").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/posts/[a-z0-9-]+$"))
    images = page.locator(".post-body img")
    expect(images).to_have_count(3)
    assert [images.nth(i).get_attribute("width") for i in range(3)] == ["90", "80", "80"]
    assert [images.nth(i).get_attribute("loading") for i in range(3)] == [None, "lazy", "lazy"]
    for index in range(3):
        images.nth(index).scroll_into_view_if_needed()
        expect(images.nth(index)).to_have_js_property("complete", True)
        assert images.nth(index).evaluate("img => img.naturalWidth") > 0
    screens.shoot(page, "published")
    browse.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_library_is_accessible_and_fits_a_phone(
    browse: Browsing, axe_source: str, tmp_path, scheme: str
) -> None:
    from tests.browser.support import VIEWPORTS

    page = browse.context("library", signed_in=True, color_scheme=scheme).new_page()
    page.goto("/media")
    page.get_by_label("Pictures", exact=True).set_input_files(
        [picture_file(tmp_path, "one.png", 30), picture_file(tmp_path, "two.png", 90)]
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    for name in ("one.png", "two.png"):
        item = page.locator(".media-item").filter(has_text=name)
        expect(item.locator(".warning")).to_be_visible()  # no alt text yet
    page.evaluate(axe_source)
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"],
    )
    assert not result["violations"], [v["id"] for v in result["violations"]]
    phone = browse.context("phone", signed_in=True, viewport=VIEWPORTS["phone"]).new_page()
    phone.goto("/media")
    width, visible = phone.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width <= visible, f"/media is {width} px wide on a {visible} px screen"
    browse.assert_clean()
