"""XSS: every payload of the corpus, in every place a user's text reaches a page, runs no script.

Two kinds of places. Stored: each post's body holds a chunk of the corpus, and its title,
summary and tags hold pieces of it; eight authors have hostile display names and bios.
Their pages, lists, revisions, drafts and trash, feeds (XML, then the HTML inside), JSON-LD
and the JSON API are all parsed and checked. Echoed: the whole corpus goes through every
field of the editor, preview, account and sign-in forms, the search box, `next=` and the
URL path, whose answers show what was typed.

Pages are parsed with html5lib's own tree builder: the same HTML5 algorithm as
BeautifulSoup's "html5lib" mode, three times faster, which keeps the corpus under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode
from xml.etree import ElementTree

import pytest
from blog.conftest import create_author, csrf_token, login, make_blog_app, signup_admin
from sqlalchemy import select

from pyproject.blog.db import get_database
from pyproject.blog.models import Post
from pyproject.blog.posts import tag_slug
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

from .checks import (
    CORPUS_FILE,
    CORPUS_MISSING,
    chunked,
    feed_problems,
    load_corpus,
    pack,
    packed,
    parse_html,
    script_problems,
)

pytestmark = pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING)

STORED_CHUNK = 40  # payloads in one post's body
ECHO_CHUNK = 100  # payloads sent through one form
WRITERS = 8
GROUP = 20  # posts per group tag, so one tag feed shows each post
BASE_URL = "http://localhost"
PASSWORD = "writer passphrase 1"


# Markdown around a payload: each puts it in another place of the rendered HTML (a heading
# and its entry in the contents, a link's text or address, an image, code, a table...).
# The preview test sends every payload bare; stored posts get them in these.
MARKDOWN_PLACES = (
    "@",
    "## @",
    "### @",
    "[@](https://example.com/)",
    "[a link](@)",
    "![@](https://example.com/i.png)",
    "![an image](@)",
    "`@`",
    "> @",
    "- @\n- two",
    "| @ | x |\n|---|---|\n| y | @ |",
    "Term\n: @",
    "A note[^n№]\n\n[^n№]: @",
    "*[ABBR]: @\n\nAn ABBR here.",
    "```\n@\n```",
    "```@\ncode\n```",
    "<@>",
    '[a reference][r№]\n\n[r№]: @ "a title"',
    '[titled](https://example.com/ "@")',
)


def in_markdown(payloads: list[str]) -> str:
    """Give a post body: each payload in the next Markdown place, blocks apart."""
    blocks = []
    for i, payload in enumerate(payloads):
        place = MARKDOWN_PLACES[i % len(MARKDOWN_PLACES)]
        blocks.append(place.replace("№", str(i)).replace("@", payload))
    return "\n\n".join(blocks)


@dataclass
class Stored:
    slug: str
    body: str
    title: str


@dataclass
class XssSite:
    app: App
    admin: TestClient
    payloads: list[str]
    writers: dict[str, TestClient]
    posts: list[Stored] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    tag_samples: list[str] = field(default_factory=list)

    def routable(self, path: str) -> bool:
        """Give whether a form's action is one of the site's addresses."""
        return bool(self.app.router.allowed_methods(path))


class Findings:
    """Problems found across many pages, reported together."""

    def __init__(self, site: XssSite) -> None:
        self.site = site
        self.problems: list[str] = []
        self._seen: dict[bytes, ElementTree.Element] = {}  # the same bytes parse the same

    def page(
        self, label: str, response: TestResponse, *, statuses: tuple[int, ...] = (200,)
    ) -> ElementTree.Element | None:
        """Check one response; give its parsed HTML (None if it is not HTML)."""
        if response.status_code not in statuses:
            self.problems.append(f"{label}: status {response.status_code}")
            return None
        self.headers(label, response)
        if not response.headers.get("Content-Type", "").startswith("text/html"):
            return None
        if response.data in self._seen:
            return self._seen[response.data]
        root = self._seen[response.data] = parse_html(response.data)
        for problem in script_problems(root, routable=self.site.routable):
            self.problems.append(f"{label}: {problem}")
        return root

    def walk(self, client: TestClient, path: str) -> int:
        """Check a paginated list, following its "next" links; give how many pages."""
        count = 0
        while path:
            root = self.page(path, client.get(path))
            count += 1
            if root is None:
                break
            following = [a.get("href") for a in root.iter("a") if a.get("rel") == "next"]
            path = following[0] if following else ""
        return count

    def fragment(self, label: str, html: str) -> None:
        for problem in script_problems(html, fragment_is_user_content=True):
            self.problems.append(f"{label}: {problem}")

    def headers(self, label: str, response: TestResponse) -> None:
        for name, value in response.headers.items():
            if any(c in value for c in "\r\n\0"):
                self.problems.append(f"{label}: header {name} holds CR, LF or NUL")

    def check(self) -> None:
        assert not self.problems, f"{len(self.problems)} problems, the first:\n" + "\n".join(
            self.problems[:15]
        )


def tag_names(payloads: list[str], limit: int = 9) -> list[str]:
    """Give up to `limit` tag names cut from payloads (no commas, each with a letter or digit)."""
    names, slugs = [], set()
    for payload in payloads:
        name = " ".join(payload.replace(",", " ").split())[:40].strip()
        slug = tag_slug(name)
        if name and slug and slug not in slugs:
            names.append(name)
            slugs.add(slug)
        if len(names) == limit:
            break
    return names


def write(client: TestClient, form: dict[str, str], **fields: str) -> TestResponse:
    return client.post("/posts", data={**form, "status": "published", **fields})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XssSite]:
    payloads = load_corpus()
    app = make_blog_app(tmp_path_factory.mktemp("xss"))
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    writers = {}
    for k in range(WRITERS):
        name = f"writer{k}"
        hostile = payloads[k * 97 :]
        response = create_author(admin, name, password=PASSWORD, display_name=pack(hostile, 80))
        assert response.status_code == 303, response.status_code
        client = app.test_client()
        assert login(client, name, PASSWORD).status_code == 303
        token = csrf_token(client)
        profile = {"csrf_token": token, "display_name": pack(hostile, 80)}
        response = client.post("/account", data={**profile, "bio": pack(hostile, 2000, "\n")})
        assert response.status_code == 303, response.status_code
        writers[name] = client
    site = XssSite(app, admin, payloads, writers)
    forms = {name: c.get("/posts/new").form_values("#post-form") for name, c in writers.items()}
    for i, chunk in enumerate(chunked(payloads, STORED_CHUNK)):
        name = f"writer{i % WRITERS}"
        third = len(chunk) // 3
        group = f"group{i // GROUP}"
        tags = [*tag_names(chunk[2 * third :]), group]
        body = in_markdown(chunk)
        title = pack(chunk, 200).strip() or "untitled"
        response = write(
            writers[name],
            forms[name],
            title=title,
            body=body,
            summary=pack(chunk[third:], 300).strip(),
            tags=", ".join(tags),
        )
        assert response.status_code == 303, f"post {i}: {response.status_code}"
        slug = response.location.removeprefix("/posts/")
        site.posts.append(Stored(slug, body, title))
        if group not in site.groups:
            site.groups.append(group)
        if i % 4 == 0 and tags[:-1]:
            site.tag_samples.append(tag_slug(tags[0]))
    # Drafts and the trash show titles in tables of their own.
    admin_form = admin.get("/posts/new").form_values("#post-form")
    for i in range(6):
        title = pack(payloads[500 + i * 61 :], 200).strip()
        response = write(admin, admin_form, title=title, body=payloads[i], status="draft")
        assert response.status_code == 303, response.status_code
        slug = response.location.removeprefix("/posts/")
        if i % 2:
            token = csrf_token(admin)
            assert (
                admin.post(f"/posts/{slug}/delete", data={"csrf_token": token}).status_code == 303
            )
    for client in (admin, *writers.values()):
        client.get("/")  # read the flashes
    yield site
    get_database(app).dispose()


@pytest.fixture(scope="module")
def empty_blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = make_blog_app(tmp_path_factory.mktemp("empty"))
    yield app
    get_database(app).dispose()


# --- stored --------------------------------------------------------------------------------


def test_markdown_is_stored_exactly_as_typed(site: XssSite) -> None:
    with get_database(site.app).read() as db:
        stored = {slug: body for slug, body in db.execute(select(Post.slug, Post.body_md))}
    wrong = [p.slug for p in site.posts if stored[p.slug] != p.body]
    assert not wrong, f"{len(wrong)} bodies were changed on the way in: {wrong[:5]}"


def test_post_pages_run_no_script(site: XssSite) -> None:
    """Each post as its author's admin sees it (with the Delete form), some as readers do."""
    found = Findings(site)
    reader = site.app.test_client()
    for i, post in enumerate(site.posts):
        viewers = [("admin", site.admin)] + ([("reader", reader)] if i % 5 == 0 else [])
        for who, client in viewers:
            root = found.page(f"{who} /posts/{post.slug}", client.get(f"/posts/{post.slug}"))
            for script in root.iter("script") if root is not None else ():
                linked_data = script.get("type") == "application/ld+json"
                if linked_data and json.loads(script.text)["headline"] != post.title:
                    found.problems.append(f"/posts/{post.slug}: JSON-LD headline differs")
    found.check()


def test_lists_drafts_trash_and_author_pages_run_no_script(site: XssSite) -> None:
    found = Findings(site)
    reader = site.app.test_client()
    assert found.walk(reader, "/") > len(site.posts) // 10
    found.walk(reader, "/posts")
    found.walk(site.admin, "/drafts")
    found.page("/trash", site.admin.get("/trash"))
    found.page("/tags", reader.get("/tags"))
    for group in site.groups:
        found.walk(reader, f"/tags/{group}")
    for slug in site.tag_samples:
        found.page(f"/tags/{slug}", reader.get(f"/tags/{quote(slug)}"))
    for name, client in site.writers.items():
        found.walk(reader, f"/authors/{name}")
        found.page(f"{name} /account", client.get("/account"))
        found.walk(client, "/drafts")
    found.page("/admin/users", site.admin.get("/admin/users"))
    found.check()


def test_revision_pages_run_no_script(site: XssSite) -> None:
    found = Findings(site)
    for i, post in enumerate(site.posts):
        path = f"/posts/{post.slug}"
        found.page(f"{path}/revisions/1", site.admin.get(f"{path}/revisions/1"))
        if i % 10 == 0:
            found.page(f"{path}/revisions", site.admin.get(f"{path}/revisions"))
            found.page(f"{path}/edit", site.admin.get(f"{path}/edit"))
    found.check()


def feeds(site: XssSite) -> list[str]:
    return [
        "/feed.atom",
        "/feed.rss",
        *(f"/tags/{group}/feed.atom" for group in site.groups),
        *(f"/authors/{name}/feed.atom" for name in site.writers),
    ]


def test_feeds_carry_no_script(site: XssSite) -> None:
    reader = site.app.test_client()
    problems = []
    for path in feeds(site):
        response = reader.get(path)
        assert response.status_code == 200, path
        found = feed_problems(response.data, rss_description_is_html=False)
        problems.extend(f"{path}: {p}" for p in found)
    assert not problems, "\n".join(problems[:15])


def test_rss_descriptions_are_safe_html(site: XssSite) -> None:
    response = site.app.test_client().get("/feed.rss")
    problems = feed_problems(response.data, rss_description_is_html=True)
    assert not problems, "\n".join(problems[:15])


def test_json_api_carries_no_script(site: XssSite) -> None:
    reader = site.app.test_client()
    problems: list[str] = []

    def check(path: str) -> dict:
        response = reader.get(path)
        assert response.status_code == 200, path
        body = response.data.decode("utf-8")
        if "<" in body or ">" in body:
            problems.append(f"{path}: a raw < or > in the JSON")
        return json.loads(body)

    def check_post(path: str, data: dict) -> None:
        for key in ("html", "snippet"):
            if key in data:
                problems.extend(
                    f"{path} {key}: {p}"
                    for p in script_problems(data[key], fragment_is_user_content=True)
                )
        for url in (data["url"], data["author"]["url"]):
            if not url.startswith(BASE_URL + "/"):
                problems.append(f"{path}: url {url!r}")

    for number in range(1, len(site.posts) // 10 + 2):
        path = f"/api/posts?page={number}"
        for data in check(path)["posts"]:
            check_post(path, data)
    for post in site.posts[::3]:
        check(f"/api/posts/{post.slug}")
    check("/api/tags")
    for chunk in chunked(site.payloads, ECHO_CHUNK)[::4]:
        path = "/api/search?" + urlencode({"q": pack(chunk, 1000)})
        data = check(path)
        for hit in data["results"]:
            check_post(path, hit)
    assert not problems, "\n".join(problems[:15])


# --- echoed --------------------------------------------------------------------------------


def joined(chunk: list[str]) -> dict[str, str]:
    """Give the whole chunk in every field of the post form, as each field would hold it."""
    return {
        "title": " ".join(chunk),
        "body": "\n".join(chunk),
        "summary": "\n".join(chunk),
        "tags": ", ".join(chunk),
        "slug": " ".join(chunk),
    }


def test_editor_shows_every_field_back_without_script(site: XssSite) -> None:
    found = Findings(site)
    token = csrf_token(site.admin)
    for i, chunk in enumerate(chunked(site.payloads, ECHO_CHUNK)):
        data = {**joined(chunk), "csrf_token": token, "status": "bogus", "publish_at": chunk[0]}
        found.page(f"new post, chunk {i}", site.admin.post("/posts", data=data), statuses=(422,))
    found.check()


def preview_fragments(
    site: XssSite, found: Findings, token: str, chunk: list[str], label: str
) -> None:
    """Preview the payloads together; a group past a render budget (422) is split in two.

    A single payload that is refused still has its 422 answer checked.
    """
    response = site.admin.post(
        "/posts/preview",
        data={"csrf_token": token, "body": "\n\n".join(chunk)},
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code in (200, 422), label
    found.fragment(f"preview fragment, {label}", response.data.decode())
    if response.status_code == 422 and len(chunk) > 1:
        half = len(chunk) // 2
        preview_fragments(site, found, token, chunk[:half], f"{label}a")
        preview_fragments(site, found, token, chunk[half:], f"{label}b")


def test_preview_renders_every_payload_without_script(site: XssSite) -> None:
    found = Findings(site)
    token = csrf_token(site.admin)
    for i, chunk in enumerate(chunked(site.payloads, ECHO_CHUNK)):
        data = {"csrf_token": token, "body": "\n\n".join(chunk)}
        preview_fragments(site, found, token, chunk, f"chunk {i}")
        if i % 10 == 0:
            full = site.admin.post("/posts/preview", data={**joined(chunk), **data})
            found.page(f"preview page, chunk {i}", full)
    found.check()


def test_conflict_page_shows_both_texts_without_script(site: XssSite) -> None:
    found = Findings(site)
    chunks = chunked(site.payloads, ECHO_CHUNK)
    for i, post in enumerate(site.posts[: len(chunks)]):
        if i % 3:
            continue
        writer = site.writers[f"writer{i % WRITERS}"]
        data = {**joined(chunks[i]), "csrf_token": csrf_token(writer), "base_revision": "0"}
        response = writer.post(f"/posts/{post.slug}/edit", data=data)
        found.page(f"conflict on {post.slug}", response, statuses=(409,))
    found.check()


def test_account_form_shows_name_and_bio_back_without_script(site: XssSite) -> None:
    found = Findings(site)
    client = site.writers["writer0"]
    token = csrf_token(client)
    for i, chunk in enumerate(chunked(site.payloads, ECHO_CHUNK)):
        data = {"csrf_token": token, "display_name": " ".join(chunk), "bio": "\n".join(chunk)}
        found.page(f"account, chunk {i}", client.post("/account", data=data), statuses=(422,))
    found.check()


def test_sign_in_form_shows_login_and_next_back_without_script(site: XssSite) -> None:
    found = Findings(site)
    visitor = site.app.test_client()
    token = csrf_token(visitor, "/login")
    for i, chunk in enumerate(chunked(site.payloads, ECHO_CHUNK)):
        text = " ".join(chunk)
        for next_value in (text, "/" + text):
            data = {"csrf_token": token, "login": text, "password": "x", "next": next_value}
            response = visitor.post("/login", data=data)
            found.page(f"sign-in, chunk {i}", response, statuses=(422, 429))
            query = urlencode({"next": next_value})
            found.page(f"/login?next=, chunk {i}", visitor.get(f"/login?{query}"))
    found.check()


def test_search_shows_every_query_back_without_script(site: XssSite, empty_blog: App) -> None:
    """Every payload as a query. The echo is checked on an empty blog (no ranking to wait
    for); every tenth query also on the full one, where results and snippets show too."""
    found = Findings(site)
    empty, full = empty_blog.test_client(), site.app.test_client()
    for i, query in enumerate(packed(site.payloads, 1000)):
        path = "/search?" + urlencode({"q": query})
        found.page(f"search {i}", empty.get(path))
        if i % 10 == 0:
            found.page(f"search {i} with results", full.get(path))
    found.check()


URL_PREFIXES = ("/", "/tags/", "/authors/", "/posts/", "/api/posts/", "/tags/x/feed.atom?")


def test_url_paths_come_back_without_script(site: XssSite) -> None:
    found = Findings(site)
    reader = site.app.test_client()
    for i, text in enumerate(packed(site.payloads, 2500)):
        for prefix in URL_PREFIXES:
            response = reader.get(prefix + quote(text, safe=""))
            found.page(f"{prefix}…, text {i}", response, statuses=(200, 404))
        response = reader.get("/drafts?" + quote(text, safe="=&"))
        found.page(f"/drafts?…, text {i}", response, statuses=(303,))
        location = response.location or ""
        if not location.startswith("/login?next="):
            found.problems.append(f"/drafts?…, text {i}: Location {location[:80]!r}")
    found.check()


FLASHES = (
    ("delete", "is in the trash"),
    ("restore", "is restored"),
    ("delete", "is in the trash"),
    ("purge", "is deleted for good"),
)


def test_flash_messages_show_titles_without_script(site: XssSite) -> None:
    """Moving a post to the trash, restoring and purging it repeat its title in a message."""
    found = Findings(site)
    admin = site.admin
    form = admin.get("/posts/new").form_values("#post-form")
    for i, title in enumerate(packed(site.payloads[::50], 200)):
        response = write(admin, form, title=title.strip() or "x", body="Short.", slug=f"flash-{i}")
        assert response.status_code == 303, response.status_code
        token = csrf_token(admin)
        for step, said in FLASHES:
            response = admin.post(
                f"/posts/flash-{i}/{step}", data={"csrf_token": token}, follow_redirects=True
            )
            found.page(f"{step} flash-{i}", response)
            assert said in response.text, f"no message after {step}"
    found.check()


# Raw HTML that tries to take keyboard focus, or to pass for one of the scrolling regions the
# renderer makes of tables and code blocks (tabindex="0" role="region" aria-label="...").
FAKE = 'tabindex="0" role="region" aria-label="Fake"'
FOCUS_GRABS = [
    ("tabindex_role_handler", '<div tabindex="5" role="button" onclick="alert(1)">grab</div>'),
    ("region_div", f'<div {FAKE} onfocus="alert(1)">grab</div>'),
    ("fake_table_wrapper", f'<div class="table-scroll" {FAKE}>grab</div>'),
    ("fake_code_wrapper", f'<div class="code-scroll" {FAKE}>grab</div>'),
    ("codehilite", '<div class="codehilite" tabindex="-1" role="button" aria-label="Fake" '
     'onfocus="alert(1)" autofocus><pre>grab</pre></div>'),
    ("pre", f'<pre {FAKE} onscroll="alert(1)">grab</pre>'),
    ("link", f'<a href="javascript:alert(1)" {FAKE}>grab</a>'),
    ("image", "<img src=x tabindex=0 role=region aria-label=Fake onerror=alert(1)> grab"),
    ("table_cell", f'<table><tr><td {FAKE} onfocus="alert(1)">grab</td></tr></table>'),
    ("language_class", '<pre><code class="language-x&quot; tabindex=&quot;0">grab</code></pre>'),
    ("in_markdown", f"| <span {FAKE}>grab</span> |\n|---|\n| x |"),
]  # fmt: skip
REGION_CLASSES = frozenset({"table-scroll", "code-scroll", "codehilite"})
REGION_NAMES = frozenset({"Code", "Table 1", "Table: grab"})


@pytest.mark.parametrize("source", [s for _, s in FOCUS_GRABS], ids=[i for i, _ in FOCUS_GRABS])
def test_raw_html_cannot_take_focus_or_pass_for_a_scrolling_region(
    site: XssSite, source: str
) -> None:
    """Only the renderer's own regions, with its own attributes, take focus in a post."""
    found = Findings(site)
    form = site.admin.get("/posts/new").form_values("#post-form")
    response = write(site.admin, form, title="Focus grab", body=f"Before.\n\n{source}\n\nAfter.")
    assert response.status_code == 303, response.status_code
    root = found.page(response.location, site.app.test_client().get(response.location))
    found.check()
    assert root is not None
    body = next(e for e in root.iter("div") if "post-body" in (e.get("class") or "").split())
    assert "grab" in "".join(body.itertext())
    for element in body.iter():
        focus = {
            a: element.get(a) for a in ("tabindex", "role", "aria-label") if a in element.attrib
        }
        if focus:
            where = f"<{element.tag} {element.attrib}>"
            assert element.tag == "div" and element.get("class") in REGION_CLASSES, where
            assert (focus.get("tabindex"), focus.get("role")) == ("0", "region"), where
            assert focus.get("aria-label") in REGION_NAMES, where
