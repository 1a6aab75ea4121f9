"""Passkeys in Chromium (#20): its virtual authenticator (Chrome DevTools Protocol
WebAuthn.addVirtualAuthenticator) stands in for a phone or a security key.

An admin adds a passkey at /account/security, signs out, and signs in with the passkey
alone; a copy of the key whose counter went back (a clone) is refused; without script the
sign-in page offers the password form only. The site is served at http://localhost:PORT:
WebAuthn refuses IP addresses as relying parties.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import ADMIN_PASSWORD, ADMIN_USERNAME, create_admin, start_site
from tests.e2e.conftest import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.e2e.conftest import ServerHandle

pytestmark = pytest.mark.browser


def expect(target):  # imported late: collecting this file must not need playwright
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture(scope="module")
def site(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    port = free_port()
    settings = {"BASE_URL": f"http://localhost:{port}"}
    handle = start_site(tmp_path_factory.mktemp("passkeys"), settings, port=port)
    try:
        yield handle
    finally:
        handle.stop()


class Device:
    """A browser context with a virtual platform authenticator (user verification on)."""

    def __init__(self, browser: Browser, site: ServerHandle, *, javascript: bool = True) -> None:
        self.context: BrowserContext = browser.new_context(
            base_url=f"http://localhost:{site.port}", java_script_enabled=javascript
        )
        self.context.set_default_timeout(10_000)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        added = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        self.authenticator = added["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return answer["credentials"]

    def close(self) -> None:
        self.context.close()


def sign_out(page: Page) -> None:
    page.goto("/account")
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(re.compile(r"/$"))


def test_a_passkey_is_added_and_signs_in_alone_and_a_clone_is_refused(
    browser: Browser, site: ServerHandle
) -> None:
    device = Device(browser, site)
    try:
        page = device.page
        create_admin(page, "")
        page.goto("/account/security")
        page.get_by_label("Name of the new passkey").fill("Virtual key")
        add = page.get_by_role("button", name="Add a passkey")
        expect(add).to_be_enabled()  # passkeys.js found a browser with passkeys
        add.click()
        expect(page.get_by_text("Your passkey “Virtual key” is added")).to_be_visible()
        expect(page.locator(".passkey-list")).to_contain_text("Virtual key")
        [made] = device.credentials()
        assert made["isResidentCredential"] and made["rpId"] == "localhost"

        sign_out(page)
        page.goto("/login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        page.wait_for_url(re.compile(r"/$"))
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        page.goto("/drafts")
        expect(page).to_have_url(re.compile(r"/drafts$"))
        [used] = device.credentials()
        assert used["signCount"] >= 1

        # A copy of the key whose counter starts again (a cloned authenticator).
        sign_out(page)
        device.cdp.send(
            "WebAuthn.removeCredential",
            {"authenticatorId": device.authenticator, "credentialId": used["credentialId"]},
        )
        device.cdp.send(
            "WebAuthn.addCredential",
            {
                "authenticatorId": device.authenticator,
                "credential": {**used, "signCount": 0},
            },
        )
        page.goto("/login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        expect(page.get_by_text("That passkey could not be used to sign in")).to_be_visible()
        page.goto("/drafts")
        expect(page).to_have_url(re.compile(r"/login\?next="))

        # The password form still works.
        page.goto("/login")
        page.get_by_label("Username or email").fill(ADMIN_USERNAME)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(re.compile(r"/$"))
        page.goto("/admin/audit?action=passkey_failed")
        expect(page.locator(".audit-table tbody tr")).to_have_count(1)
        expect(page.locator(".audit-table")).to_contain_text("sign count")
        assert device.errors == []
    finally:
        device.close()


def test_without_script_the_sign_in_page_offers_the_password_only(
    browser: Browser, site: ServerHandle
) -> None:
    device = Device(browser, site, javascript=False)
    try:
        page = device.page
        page.goto("/login")
        expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
        expect(page.get_by_label("Password")).to_be_visible()
    finally:
        device.close()
