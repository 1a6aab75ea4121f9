"""A new user's first walk through the blog, over HTTP, against gunicorn with several workers.

Every form is read from the page and sent back with its CSRF token, as a browser would;
cookies live in a jar per visitor. Consecutive requests land on different workers, so
sessions, flashes and the page cache must agree across processes.
"""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import feedparser
import pytest
from bs4 import BeautifulSoup

from tests.e2e.conftest import ServerHandle

POST_BODY = """Hello from my **first** post.

## Some code

```python
def greet(name):
    return f"Hello, {name}!"
```

## A table

| Language | Year |
|----------|------|
| Python   | 1991 |
| Rust     | 2015 |

## A footnote

Python is named after a comedy group.[^1]

[^1]: Monty Python's Flying Circus.
"""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # keep 3xx answers visible to the test
        return None


@dataclass
class Page:
    status: int
    url: str
    headers: dict[str, str]
    text: str

    @property
    def html(self) -> BeautifulSoup:
        return BeautifulSoup(self.text, "html5lib")

    def form(self, selector: str) -> tuple[str, dict[str, str]]:
        """Give a form's action and its fields as the page fills them."""
        form = self.html.select_one(selector)
        assert form is not None, f"no {selector} on {self.url}"
        values: dict[str, str] = {}
        for field in form.select("input[name], textarea[name]"):
            kind = field.get("type", "text")
            if field.name == "textarea":
                values[field["name"]] = field.text
            elif kind in ("radio", "checkbox"):
                if field.has_attr("checked"):
                    values[field["name"]] = field.get("value", "on")
            elif kind not in ("submit", "button"):
                values[field["name"]] = field.get("value", "")
        return form.get("action") or self.url, values


class Visitor:
    """A browser stand-in: a cookie jar, following redirects like a browser does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def open(self, path: str, data: dict[str, str] | None = None, follow: bool = True) -> Page:
        url = urllib.parse.urljoin(self.base, path)
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        for _ in range(10):
            request = urllib.request.Request(url, data=body)
            try:
                with self.opener.open(request, timeout=10) as response:
                    return Page(
                        response.status, url, dict(response.headers), response.read().decode()
                    )
            except urllib.error.HTTPError as error:
                page = Page(error.code, url, dict(error.headers), error.read().decode())
                if follow and error.code in (301, 302, 303, 307, 308):
                    url = urllib.parse.urljoin(url, error.headers["Location"])
                    if error.code == 303:
                        body = None
                    continue
                return page
        raise AssertionError("too many redirects")

    def submit(self, page: Page, selector: str, **changes: str) -> Page:
        action, values = page.form(selector)
        values.update(changes)
        return self.open(action, values)


@pytest.fixture
def server(gunicorn_factory: Callable[..., ServerHandle]) -> ServerHandle:
    return gunicorn_factory(workers=3)


def test_a_new_user_sets_up_the_blog_writes_publishes_edits_and_readers_read_it(
    server: ServerHandle,
) -> None:
    author = Visitor(server.url)

    # A fresh site: the home page is empty, and signing in leads to the first-run setup.
    home = author.open("/")
    assert home.status == 200
    assert "Nothing is published yet" in home.text
    sign_in = home.html.find("a", string="Sign in")
    setup = author.open(sign_in["href"])
    assert setup.url.endswith("/setup")

    # Create the admin account; we land signed in, in the editor.
    editor = author.submit(
        setup,
        "main form",
        username="ada",
        email="ada@example.com",
        display_name="Ada",
        password="a long and lovely passphrase",
        confirm="a long and lovely passphrase",
    )
    assert editor.status == 200 and editor.url.endswith("/posts/new")
    assert "Welcome!" in editor.text

    # Write a post with a code block, a table and a footnote, and publish it.
    post = author.submit(
        editor,
        "#post-form",
        title="My first post",
        body=POST_BODY,
        tags="",
        status="published",
    )
    assert post.status == 200 and post.url.endswith("/posts/my-first-post")
    body = post.html.select_one(".post-body")
    assert body.select(".codehilite span.k") or body.select(".codehilite span")
    assert body.select_one("table td").text == "Python"
    assert body.select_one("sup a.footnote-ref")["href"] == "#fn:1"
    assert "Post published." in post.text

    # It is on the home page.
    titles = [a.text for a in author.open("/").html.select(".post-item-title a")]
    assert titles == ["My first post"]

    # Edit it: tag it and change the title (the slug stays: the post is published).
    edit = author.open("/posts/my-first-post/edit")
    edited = author.submit(
        edit, "#post-form", title="My first post, edited", tags="python, Getting Started"
    )
    assert edited.status == 200 and edited.url.endswith("/posts/my-first-post")
    assert edited.html.select_one("h1").text == "My first post, edited"
    assert {a.text for a in edited.html.select(".tags a")} == {"python", "Getting Started"}

    # The tag page lists it.
    tag = author.open("/tags/getting-started")
    assert tag.status == 200
    assert [a.text for a in tag.html.select(".post-item-title a")] == ["My first post, edited"]

    # Sign out (a POST with the token from the page's header).
    signed_out = author.submit(author.open("/"), 'form[action="/logout"]')
    assert signed_out.status == 200 and "You are signed out." in signed_out.text
    assert author.open("/drafts", follow=False).status == 303

    # A reader, with a browser of their own, reads it, and follows the feed.
    reader = Visitor(server.url)
    page = reader.open("/posts/my-first-post")
    assert page.status == 200
    assert page.html.select_one("h1").text == "My first post, edited"
    assert page.html.select_one(".post-body table")
    assert page.html.select_one('link[rel="canonical"]')["href"] == (
        f"{server.url}/posts/my-first-post"
    )
    assert page.headers.get("Cache-Control", "").startswith("public")
    feed = feedparser.parse(reader.open("/feed.atom").text)
    assert not feed.bozo
    assert [entry.title for entry in feed.entries] == ["My first post, edited"]

    # Every worker gives the reader the same, current page.
    for _ in range(6):
        again = reader.open("/")
        assert [a.text for a in again.html.select(".post-item-title a")] == [
            "My first post, edited"
        ]
    assert "Traceback" not in server.stderr_text()
