"""Comments in Chromium (#18): a reader with JavaScript off comments, the author moderates,
and the pages a comment brings (the post with comments, a reply page, /comments) pass
axe-core's WCAG 2.1 A and AA rules in light and dark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.support import SCHEMES, Blog, Browsing, publish_post
from tests.browser.test_browser_accessibility import describe, run_axe

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

TITLE = "Comments welcome"
PATH = "/posts/comments-welcome"


@pytest.fixture(scope="module")
def commented(blog: Blog, browser: Browser) -> dict[str, str]:
    """A post with a reader's comment, written with JavaScript off and approved by the admin;
    give the paths of the pages to check."""
    browsing = Browsing(browser, blog.server, blog.author_state)
    try:
        author = browsing.context("author", signed_in=True).new_page()
        assert publish_post(author, title=TITLE, body="Tell me what you think.") == PATH
        reader = browsing.context("reader", javascript=False).new_page()
        reader.goto(PATH)
        reader.get_by_role("textbox", name="Name").fill("Carol Reader")
        reader.get_by_label("Email (never shown; for reply notifications)").fill("c@example.com")
        reader.get_by_role("textbox", name="Comment").fill("A *lovely* post.\n\n> quoted")
        reader.wait_for_timeout(3500)  # a person takes more than the token's minimum age
        reader.get_by_role("button", name="Send comment").click()
        reader.wait_for_url(f"**{PATH}#comment-*")
        held = reader.locator(".comment-held")
        assert held.count() == 1 and "Awaiting review" in held.inner_text()
        author.goto("/comments")
        author.get_by_role("button", name="Approve", exact=True).first.click()
        author.wait_for_url("**/comments?state=held")
        author.goto(PATH)
        comment = author.locator(".comment-list .comment").first
        assert "lovely" in comment.inner_text()
        reply = comment.locator("xpath=..").get_by_role("link", name="Reply to Carol Reader")
        reply_path = reply.get_attribute("href")
        browsing.assert_clean()
    finally:
        browsing.close()
    return {"post": PATH, "reply": reply_path, "moderation": "/comments?state=approved"}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", ["post", "reply", "moderation"])
def test_comment_pages_have_no_wcag_21_aa_violations(
    browse: Browsing, commented: dict[str, str], axe_source: str, name: str, scheme: str
) -> None:
    signed_in = name == "moderation"
    page = browse.context(name, signed_in=signed_in, color_scheme=scheme).new_page()
    response = page.goto(commented[name])
    assert response is not None and response.status == 200
    result = run_axe(page, axe_source)
    violations = result["violations"]
    assert not violations, f"axe-core on {commented[name]} ({scheme}):\n{describe(violations)}"
    browse.assert_clean()
