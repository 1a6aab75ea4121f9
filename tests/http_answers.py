"""What the tests that speak HTTP to a real gunicorn share: an answer, and a cookie jar.

The e2e and reliability suites drive the server through http.client (each client with
its own cookies, so its own session); this reads one response into an `Answer` and keeps
the client's cookies as a browser would.
"""

from __future__ import annotations

import html
import http.client
import re
from dataclasses import dataclass

from bs4 import BeautifulSoup

_FORM_ERROR_RE = re.compile(r'<p class="error" id="e-([a-z_]+)">(.*?)</p>', re.S)


@dataclass
class Answer:
    """One response: status, headers (names lower-cased) and body text."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    @property
    def form_errors(self) -> dict[str, str]:
        """Give the errors shown beside the fields of a re-rendered form, by field name."""
        return {name: html.unescape(message) for name, message in _FORM_ERROR_RE.findall(self.text)}

    @property
    def html(self) -> BeautifulSoup:
        return BeautifulSoup(self.text, "html.parser")

    def form(self, selector: str) -> dict[str, str]:
        """Give the named fields of the first form matching `selector`, as a browser sends them."""
        form = self.html.select_one(selector)
        assert form is not None, f"no {selector} in a {self.status} page"
        values: dict[str, str] = {}
        for element in form.select("input[name], textarea[name]"):
            kind = element.get("type", "text")
            if element.name == "textarea":
                # A browser drops the one newline that may follow <textarea>.
                values[element["name"]] = element.text.removeprefix("\n")
            elif kind in ("checkbox", "radio"):
                if element.has_attr("checked"):
                    values[element["name"]] = element.get("value", "on")
            elif kind not in ("submit", "button", "image", "file"):
                values[element["name"]] = element.get("value", "")
        return values


def read_answer(response: http.client.HTTPResponse, cookies: dict[str, str]) -> Answer:
    """Read a response whole into an Answer, keeping (or dropping) the cookies it sets."""
    text = response.read().decode("utf-8", "replace")
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].strip().partition("=")
        if value and "max-age=0" not in header.lower():
            cookies[name] = value
        else:
            cookies.pop(name, None)
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
