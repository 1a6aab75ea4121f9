"""Menus in Chromium (#17): /admin/navigation's buttons with JavaScript off, drag with it on.

The header shows the menu at once, in the order set, and marks the current page with
aria-current="page".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.support import Browsing

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def add_archive_link(page: Page, label: str) -> None:
    page.goto("/admin/navigation")
    form = page.locator("#add-link-form")
    form.locator("#f-label").fill(label)
    form.locator("#f-target_kind").select_option("archive")
    form.get_by_role("button", name="Add the link").click()
    page.wait_for_url("**/admin/navigation")


def header_labels(page: Page, ours: set[str]) -> list[str]:
    page.goto("/")
    return [text for text in page.locator(".site-nav > a").all_inner_texts() if text in ours]


def test_menu_buttons_work_without_javascript(browse: Browsing) -> None:
    page = browse.context("admin", javascript=False, signed_in=True).new_page()
    ours = {"Plain one", "Plain two", "Plain three"}
    for label in ("Plain one", "Plain two", "Plain three"):
        add_archive_link(page, label)
    assert header_labels(page, ours) == ["Plain one", "Plain two", "Plain three"]
    page.goto("/admin/navigation")
    page.get_by_role("button", name="Move up “Plain three”").click()
    page.wait_for_url("**/admin/navigation")
    assert "Moved “Plain three” up." in page.locator(".flash").first.inner_text()
    page.get_by_role("button", name="Remove “Plain one”").click()
    page.wait_for_url("**/admin/navigation")
    assert header_labels(page, ours) == ["Plain three", "Plain two"]
    current = page.locator('.site-nav > a[aria-current="page"]')
    page.goto("/posts")
    assert current.first.get_attribute("href") == "/posts"
    browse.assert_clean()


def test_dragging_a_link_reorders_the_menu(browse: Browsing) -> None:
    page = browse.context("admin", signed_in=True).new_page()
    ours = {"Drag A", "Drag B", "Drag C"}
    for label in ("Drag A", "Drag B", "Drag C"):
        add_archive_link(page, label)
    page.goto("/admin/navigation")
    items = page.locator('ol.nav-links[data-menu="header"] > li.nav-link')
    dragged = items.filter(has_text="Drag C")
    target = items.filter(has_text="Drag A")
    assert dragged.get_attribute("draggable") == "true"
    with page.expect_navigation():
        dragged.drag_to(target, target_position={"x": 20, "y": 2})  # onto A's upper half
    assert "new order" in page.locator(".flash").first.inner_text()
    assert header_labels(page, ours) == ["Drag C", "Drag A", "Drag B"]
    browse.assert_clean()
