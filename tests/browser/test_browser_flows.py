"""What people do on the blog, in a real Chromium against a real gunicorn.

Each test does one flow as a person would: through the links, labels and buttons of the
pages, on a blog shared by this module (posts of its own) or, for the first run of a
site, on a new one. The first four flows run twice, with and without JavaScript, because
every page must work without its script. Every flow ends by checking that no page asked
another host for anything, that the console stayed free of errors (Content-Security-
Policy violations included) and that the server logged no traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    ADMIN_EMAIL,
    ADMIN_NAME,
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    AUTOSAVE_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    IMAGE_PATH,
    POST_BODY,
    Blog,
    Browsing,
    fill_post,
    labelled,
    publish_post,
    save,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Locator, Page, Playwright

    from tests.browser.support import Screens

pytestmark = pytest.mark.browser

with_and_without_script = pytest.mark.parametrize(
    "javascript", [True, False], ids=["script", "no-script"]
)


def mode(javascript: bool) -> str:
    """Give the words that keep the two runs' posts apart on the shared blog."""
    return "with script" if javascript else "without script"


def expect(target):  # imported late: collecting this file must not need playwright
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def flash(page: Page) -> Locator:
    return page.locator("main > p.flash")


def assert_rendered_post(body: Locator) -> None:
    """Check the rendering of POST_BODY: heading, code, table, footnote, link and image."""
    expect(body.get_by_role("heading", name="Install")).to_have_attribute("id", "install")
    expect(body.locator(".codehilite span[class]").first).to_be_visible()
    expect(body.locator(".codehilite")).to_contain_text('return f"Hello, {name}!"')
    expect(body.get_by_role("columnheader", name="Default")).to_be_visible()
    expect(body.get_by_role("cell", name="TIMEZONE")).to_be_visible()
    expect(body.locator("a.footnote-ref")).to_have_attribute("href", "#fn:why")
    expect(body.locator(".footnote li#fn\\:why")).to_contain_text("one query and no Markdown")
    expect(body.get_by_role("link", name="tag list")).to_have_attribute("href", "/tags")
    image = body.get_by_role("img", name="A blue diagram of the request flow")
    expect(image).to_have_attribute("src", IMAGE_PATH)


def drafts_row(page: Page, title: str) -> Locator:
    return page.locator("table.post-table tbody tr").filter(has_text=title)


# --- 1. a new site -------------------------------------------------------------------------


@with_and_without_script
def test_a_new_site_leads_from_sign_in_to_setup_and_the_admin_lands_signed_in(
    browse_new_site: Browsing, screens: Screens, javascript: bool
) -> None:
    browse = browse_new_site
    page = browse.context("admin", javascript=javascript).new_page()
    page.goto("/")
    expect(page.locator("main")).to_contain_text("Nothing is published yet.")
    screens.shoot(page, "empty-home")

    with page.expect_navigation() as arrival:
        page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/setup$"))
    via = arrival.value.request.redirected_from
    assert via is not None and via.url.endswith("/login"), "Sign in did not lead through /login"
    expect(heading(page)).to_have_text("Set up your blog")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Display name").fill(ADMIN_NAME)
    page.get_by_label(labelled("Password")).fill(ADMIN_PASSWORD)
    page.get_by_label(labelled("Password again")).fill(ADMIN_PASSWORD)
    screens.shoot(page, "setup")
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(re.compile(r"/posts/new$"))
    expect(flash(page)).to_contain_text("Welcome! Your blog is ready.")
    nav = page.get_by_role("navigation", name="Site")
    expect(nav.get_by_role("button", name="Sign out")).to_be_visible()
    expect(nav.get_by_role("link", name="Sign in")).to_have_count(0)
    screens.shoot(page, "signed-in")

    page.goto("/setup")  # the page exists only until the first account does
    expect(heading(page)).to_have_text("Not Found")
    browse.assert_clean()


# --- 2. writing ----------------------------------------------------------------------------


def preview_without_script(page: Page, screens: Screens, title: str) -> None:
    """Preview in a page without script: the form comes back with the preview, as typed."""
    page.goto("/posts/new")
    fill_post(page, title=title)
    page.get_by_role("button", name="Preview").click()
    expect(page).to_have_url(re.compile(r"/posts/preview$"))
    expect(page.locator("#preview")).to_be_visible()
    assert_rendered_post(page.locator("#preview-body"))
    expect(page.get_by_label("Title")).to_have_value(title)
    expect(page.locator("#f-body")).to_have_value(POST_BODY)
    expect(page.get_by_label("Tags")).to_have_value("Python, Web Dev")
    screens.shoot(page, "preview-without-script")


@with_and_without_script
def test_an_author_writes_previews_saves_a_draft_then_publishes_it(
    browse: Browsing, screens: Screens, javascript: bool
) -> None:
    title = f"Writing Python {mode(javascript)}"
    author = browse.context("author", javascript=javascript, signed_in=True)
    page = author.new_page()

    if javascript:
        page.goto("/posts/new")
        fill_post(page, title=title)
        # The editor keeps a draft on the server a few seconds after typing stops.
        expect(page.locator("#autosave-status")).to_contain_text(
            "Saved at", timeout=AUTOSAVE_TIMEOUT_MS
        )
        screens.shoot(page, "editor")
        url_before = page.url
        with page.expect_response("**/posts/preview") as answer:
            page.get_by_role("button", name="Preview").click()
        assert answer.value.request.resource_type == "fetch"
        expect(page.locator("#preview")).to_be_visible()
        assert_rendered_post(page.locator("#preview-body"))
        assert page.url == url_before, "the in-place preview navigated away"
        expect(page.get_by_label("Title")).to_have_value(title)
        screens.shoot(page, "preview-in-place")
        # The same author, in a browser without script, previews through the form.
        scriptless = browse.context(
            "author-no-script", javascript=False, storage_state=author.storage_state()
        ).new_page()
        preview_without_script(scriptless, screens, title)
        scriptless.close()
    else:
        preview_without_script(page, screens, title)

    save(page)  # the status is Draft unless changed
    expect(page).to_have_url(re.compile(r"/posts/writing-python-with(out)?-script$"))
    expect(flash(page)).to_have_text("Draft saved.")
    expect(page.locator(".post-header .badge")).to_contain_text("Draft")
    assert_rendered_post(page.locator(".post-body"))
    screens.shoot(page, "draft")

    page.get_by_role("link", name="My posts").click()
    expect(drafts_row(page, title)).to_have_count(1)
    expect(drafts_row(page, title)).to_contain_text("Draft")
    screens.shoot(page, "drafts")

    page.get_by_role("link", name=f"Edit {title}").click()
    page.get_by_role("radio", name="Published").check()
    save(page)
    expect(flash(page)).to_have_text("Post published.")
    expect(page.locator(".post-header .badge")).to_have_count(0)

    page.get_by_role("link", name="PyProject").click()
    item = page.get_by_role("article").filter(has_text=title)
    expect(item.get_by_role("link", name=title)).to_be_visible()
    screens.shoot(page, "home")
    item.get_by_role("link", name="Web Dev").click()
    expect(page).to_have_url(re.compile(r"/tags/web-dev$"))
    expect(heading(page)).to_have_text("Posts tagged “Web Dev”")
    expect(page.get_by_role("link", name=title)).to_be_visible()
    screens.shoot(page, "tag")
    feed = author.request.get("/feed.atom")
    assert feed.status == 200
    assert f"<title>{title}</title>" in feed.text()
    browse.assert_clean()


# --- 3. reading ----------------------------------------------------------------------------


@with_and_without_script
def test_a_visitor_reads_highlighted_code_and_follows_contents_links_and_footnotes(
    browse: Browsing, screens: Screens, javascript: bool
) -> None:
    title = f"Reading Python {mode(javascript)}"
    author = browse.context("author", javascript=javascript, signed_in=True).new_page()
    path = publish_post(author, title=title, tags="Python, Reading", days_ago=3)

    page = browse.context("visitor", javascript=javascript).new_page()
    page.goto("/")
    page.get_by_role("link", name="Tags").click()
    page.get_by_role("link", name="Reading").click()
    item = page.get_by_role("article").filter(has_text=title)
    # A date as a date; script adds the relative form within a week (#23).
    shown = re.compile(r"^\d{1,2} \w+ \d{4}" + (r" \(3 days ago\)$" if javascript else "$"))
    expect(item.locator("time")).to_have_text(shown)
    item.get_by_role("link", name=title).click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    expect(page.locator(".post-meta time")).to_have_text(shown)
    assert_rendered_post(page.locator(".post-body"))
    screens.shoot(page, "post")

    # Highlighted: Pygments' classes are on the spans and its stylesheet colours them.
    code = page.locator(".post-body .codehilite")
    keyword = code.locator("span.k", has_text="def")
    expect(keyword).to_have_count(1)
    assert code.locator("span[class]").count() >= 5
    plain = code.evaluate("e => getComputedStyle(e).color")
    coloured = keyword.evaluate("e => getComputedStyle(e).color")
    assert plain != coloured, f"keywords are not coloured ({plain})"

    contents = page.get_by_role("navigation", name="Table of contents")
    expect(contents.get_by_role("link")).to_have_count(3)
    contents.get_by_role("link", name="Run").click()
    expect(page).to_have_url(re.compile(r"#run$"))
    expect(page.get_by_role("heading", name="Run")).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 200, "the contents link did not scroll"

    page.locator(".post-body a.footnote-ref").click()
    expect(page).to_have_url(re.compile(r"#fn:why$"))
    expect(page.locator("li#fn\\:why")).to_be_in_viewport()
    page.locator("li#fn\\:why a.footnote-backref").click()
    expect(page).to_have_url(re.compile(r"#fnref:why$"))
    expect(page.locator(".post-body a.footnote-ref")).to_be_in_viewport()

    page.get_by_role("link", name="the install step").click()
    expect(page).to_have_url(re.compile(r"#install$"))
    expect(page.get_by_role("heading", name="Install")).to_be_in_viewport()
    page.get_by_role("link", name="tag list").click()
    expect(page).to_have_url(re.compile(r"/tags$"))
    expect(page.get_by_role("link", name="Reading")).to_be_visible()
    browse.assert_clean()


# --- 4. editing ----------------------------------------------------------------------------


@with_and_without_script
def test_an_edit_of_title_and_slug_redirects_the_old_url_and_shows_in_the_history(
    browse: Browsing, screens: Screens, javascript: bool
) -> None:
    old_title = f"A small framework {mode(javascript)}"
    new_title = f"A tiny framework {mode(javascript)}"
    new_slug = "edited-" + ("with" if javascript else "without") + "-script"
    page = browse.context("author", javascript=javascript, signed_in=True).new_page()
    old_path = publish_post(page, title=old_title)
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(heading(page)).to_have_text("Edit post")
    screens.shoot(page, "editor")
    # Saved at once: an autosave (3 s after typing stops) would be a revision of its own.
    page.get_by_label("Title").fill(new_title)
    page.get_by_label("Slug").fill(new_slug)
    body = page.locator("#f-body")
    body.fill(body.input_value().replace("happens once", "happens exactly once"))
    save(page)
    expect(page).to_have_url(re.compile(rf"/posts/{new_slug}$"))
    expect(heading(page)).to_have_text(new_title)

    visitor = browse.context("visitor", javascript=javascript).new_page()
    response = visitor.goto(old_path)
    assert response is not None and response.status == 200
    assert response.url.endswith(f"/posts/{new_slug}")
    first = response.request.redirected_from
    assert first is not None and first.url.endswith(old_path)
    assert first.response().status == 301
    expect(heading(visitor)).to_have_text(new_title)

    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(re.compile(rf"/posts/{new_slug}/revisions$"))
    rows = page.locator("table.post-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("#2 (current)")
    screens.shoot(page, "history")
    rows.first.get_by_role("link", name="#2").click()
    expect(heading(page)).to_contain_text("Revision 2")
    title_diff = page.locator(".diff-fields dd").first
    expect(title_diff.locator("del")).to_have_text("small")
    expect(title_diff.locator("ins")).to_have_text("tiny")
    expect(page.locator("pre.diff ins")).to_have_text("exactly")
    screens.shoot(page, "diff")
    browse.assert_clean()


# --- 5. autosave and conflicts -------------------------------------------------------------


def type_at_end(page: Page, text: str) -> None:
    body = page.locator("#f-body")
    body.click()
    page.keyboard.press("Control+End")
    body.press_sequentially(text)


def test_autosave_keeps_typed_text_and_a_reload_offers_it_back(
    browse: Browsing, screens: Screens
) -> None:
    page = browse.context("author", signed_in=True).new_page()
    page.goto("/posts/new")
    fill_post(page, title="Autosaved", body="The first paragraph.")
    save(page)
    expect(flash(page)).to_have_text("Draft saved.")
    page.get_by_role("link", name="Edit", exact=True).click()

    type_at_end(page, "\n\nA paragraph only the autosave has.")
    expect(page.locator("#autosave-status")).to_contain_text(
        "Saved at", timeout=AUTOSAVE_TIMEOUT_MS
    )
    screens.shoot(page, "autosaved")

    page.reload()
    body = page.locator("#f-body")
    expect(body).to_have_value("The first paragraph.")
    # One offer (#23): the server's autosave is newer than the copy this browser kept
    # (that copy is written as the author types, the autosave seconds later).
    notice = page.get_by_role("status").filter(has_text="You have unsaved changes")
    expect(notice).to_be_visible()
    local = page.locator("#local-copy")
    expect(local).to_be_hidden()
    expect(notice.locator("#recovery-diff-server summary")).to_have_text(
        "Show what is different from the saved version"
    )
    screens.shoot(page, "offered")
    notice.get_by_role("link", name="Restore them").click()
    expect(page).to_have_url(re.compile(r"/edit\?autosave=\d+$"))
    expect(flash(page).filter(has_text="Restored your unsaved changes")).to_be_visible()
    expect(body).to_have_value(
        re.compile(r"^The first paragraph\.\s+A paragraph only the autosave has\.$")
    )
    expect(local).to_be_hidden()  # the page now shows what this browser kept
    screens.shoot(page, "restored")
    save(page)
    expect(page.locator(".post-body")).to_contain_text("A paragraph only the autosave has.")
    browse.assert_clean()


def test_a_new_posts_local_copy_is_offered_after_a_reload(
    browse: Browsing, screens: Screens
) -> None:
    page = browse.context("author", signed_in=True).new_page()
    page.goto("/posts/new")
    fill_post(page, title="Kept locally", body="Words the server has.")
    expect(page.locator("#autosave-status")).to_contain_text(
        "Saved at", timeout=AUTOSAVE_TIMEOUT_MS
    )
    expect(page).to_have_url(re.compile(r"/posts/kept-locally/edit$"))
    type_at_end(page, " Words only this browser has.")
    # Before the next autosave (3 s after typing stops): the page asks first (#23).
    page.once("dialog", lambda dialog: dialog.accept())
    page.reload()
    expect(page.locator("#f-body")).to_have_value("Words the server has.")
    screens.shoot(page, "reloaded")
    expect(page.locator("#local-copy")).to_be_visible(timeout=2_000)


def test_two_tabs_saving_one_post_give_the_second_a_conflict_page_with_its_text(
    browse: Browsing, screens: Screens
) -> None:
    context = browse.context("author", signed_in=True)
    first = context.new_page()
    path = publish_post(first, title="Edited in two tabs")
    second = context.new_page()
    first.goto(path + "/edit")
    second.goto(path + "/edit")

    first.locator("#f-body").fill("The first tab's text.")
    save(first)
    expect(flash(first)).to_have_text("Post published.")

    second.get_by_label("Title").fill("The second tab's title")
    second.locator("#f-body").fill("The second tab's text, which must not be lost.")
    with second.expect_response(lambda r: r.request.method == "POST") as answer:
        save(second)
    assert answer.value.status == 409
    expect(heading(second)).to_have_text("Your changes were not saved yet")
    expect(second.get_by_role("alert")).to_contain_text("it is now at revision 2")
    expect(second.get_by_label("Title")).to_have_value("The second tab's title")
    expect(second.get_by_label("Body")).to_have_value(
        "The second tab's text, which must not be lost."
    )
    expect(second.locator("pre.diff ins").first).to_be_visible()
    screens.shoot(second, "conflict")

    second.get_by_role("button", name="Save my version").click()
    expect(heading(second)).to_have_text("The second tab's title")
    expect(second.locator(".post-body")).to_have_text(
        "The second tab's text, which must not be lost."
    )
    browse.assert_clean()


# --- 6. delete and restore -----------------------------------------------------------------


def test_delete_asks_first_moves_the_post_to_the_trash_and_restores_it(
    browse: Browsing, screens: Screens
) -> None:
    title = "Deleted, then restored"
    page = browse.context("author", signed_in=True).new_page()
    path = publish_post(page, title=title)
    questions: list[str] = []

    def answer(accept: bool) -> Callable[[Dialog], None]:
        def handle(dialog: Dialog) -> None:
            questions.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    page.once("dialog", answer(accept=False))
    page.locator(".author-tools summary").click()  # delete sits behind a menu (#23)
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(300)  # a form must not be sent when confirm() says no
    assert questions == [f"Move “{title}” to the trash?"]
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    page.reload()
    expect(heading(page)).to_have_text(title)

    page.once("dialog", answer(accept=True))
    page.locator(".author-tools summary").click()
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/trash$"))
    assert len(questions) == 2
    expect(flash(page)).to_contain_text("is in the trash")
    row = page.locator("table.post-table tbody tr").filter(has_text=title)
    expect(row).to_have_count(1)
    screens.shoot(page, "trash")
    visitor = browse.context("visitor").new_page()
    assert visitor.goto(path).status == 410

    row.get_by_role("button", name=f"Restore {title}").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(flash(page)).to_contain_text("is restored")
    assert visitor.goto(path).status == 200
    page.goto("/trash")
    expect(page.locator("table.post-table tbody tr").filter(has_text=title)).to_have_count(0)
    browse.assert_clean()


# --- 8. errors a person can cause ----------------------------------------------------------


def test_a_placeholder_link_is_named_beside_the_body_and_the_text_is_kept(
    browse: Browsing, screens: Screens
) -> None:
    # A title may be empty now (a short note, #23); a link to "https://" may not.
    page = browse.context("author", signed_in=True).new_page()
    page.goto("/posts/new")
    typed = POST_BODY + "\n\nSee [the docs](https://).\n"
    fill_post(page, title="Placeholder", body=typed)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        save(page)
    assert answer.value.status == 422
    body = page.locator("#f-body")
    message = "A link still has a placeholder address (“https://”)"
    expect(page.locator("#e-body")).to_contain_text(message)
    expect(body).to_have_attribute("aria-invalid", "true")
    expect(body).to_have_attribute("aria-describedby", "e-body h-body")
    expect(page.get_by_role("alert")).to_contain_text("The post was not saved.")
    expect(body).to_have_value(typed)
    expect(page.get_by_label("Tags")).to_have_value("Python, Web Dev")
    screens.shoot(page, "placeholder-link")
    page.get_by_role("alert").get_by_role("link", name=message).click()
    expect(body).to_be_focused()
    browse.assert_clean()


def test_a_tag_over_40_characters_is_named_beside_its_field_and_the_text_is_kept(
    browse: Browsing, screens: Screens
) -> None:
    page = browse.context("author", signed_in=True).new_page()
    page.goto("/posts/new")
    too_long = "a" * 41
    fill_post(page, title="Too long a tag", tags=f"Python, {too_long}")
    save(page)
    expect(page.locator("#e-tags")).to_contain_text("at most 40 characters")
    expect(page.locator("#e-tags")).to_contain_text(too_long)
    expect(page.get_by_label("Tags")).to_have_attribute("aria-describedby", "e-tags")
    expect(page.get_by_label("Tags")).to_have_value(f"Python, {too_long}")
    expect(page.get_by_label("Title")).to_have_value("Too long a tag")
    expect(page.locator("#f-body")).to_have_value(POST_BODY)
    screens.shoot(page, "long-tag")
    browse.assert_clean()


def test_wrong_passwords_are_named_beside_the_field_and_the_name_is_kept(
    browse: Browsing, screens: Screens
) -> None:
    # An author of its own: the throttle that follows must not lock the shared admin out.
    admin = browse.context("admin", signed_in=True).new_page()
    admin.goto("/admin/users")
    admin.get_by_label("Username").fill("grace")
    admin.get_by_label("Email").fill("grace@example.com")
    admin.get_by_label(labelled("Password")).fill("grace passphrase 1")
    admin.get_by_label(labelled("Password again")).fill("grace passphrase 1")
    admin.get_by_role("button", name="Add user").click()
    expect(flash(admin)).to_have_text("Added grace.")

    page = browse.context("visitor").new_page()
    login = page.get_by_label("Username or email")
    for attempt in range(1, 6):
        sign_in(page, "grace", f"wrong password {attempt}")
        expect(page.locator("#e-login")).to_have_text(
            "That username or email and password do not match an account."
        )
        expect(login).to_have_value("grace")
        expect(login).to_have_attribute("aria-describedby", "e-login")
        expect(page.get_by_label("Password")).to_have_value("")
    screens.shoot(page, "wrong-password")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        sign_in(page, "grace", "grace passphrase 1")  # even the right one must wait now
    assert answer.value.status == 429
    expect(page.locator("#e-login")).to_contain_text("Too many failed sign-ins. Try again in")
    expect(login).to_have_value("grace")
    screens.shoot(page, "throttled")
    browse.assert_clean()


# --- 9. the browser asks nothing the site does not answer ----------------------------------


def test_the_browser_finds_the_sites_icon(playwright: Playwright, blog: Blog) -> None:
    # A browser of its own: Chromium asks a site for its icon once and remembers the answer;
    # and no routes: with a route set, Chromium does not ask at all.
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        browse = Browsing(chromium, blog.server)
        page = browse.context("visitor", images=False).new_page()
        page.goto("/")
        deadline = time.monotonic() + 3
        while not browse.favicon_errors() and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert not browse.favicon_errors(), "\n".join(browse.favicon_errors())
    finally:
        chromium.close()
