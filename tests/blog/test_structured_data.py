"""What search engines and link previews read: JSON-LD, canonical URLs, descriptions,
OpenGraph; and the reading aids on every post and list item (reading time, contents).

Pages are parsed with html5lib, as a browser would: a title that tries to close the
JSON-LD <script> must leave exactly one ld+json script whose text is JSON with that title.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.conftest import (
    Cast,
    create_author,
    edit_post,
    login,
    signup_admin,
    slug_of,
    write_post,
)
from pyproject.blog.db import get_database
from pyproject.blog.models import Post, set_clock, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestResponse

BASE = "http://localhost"
SITE_DESCRIPTION = "A small, fast blog."
LD_JSON = 'script[type="application/ld+json"]'


def stored_post(app: App, slug: str) -> Post:
    with get_database(app).read() as db:
        return db.scalar(select(Post).options(selectinload(Post.tags)).where(Post.slug == slug))


def ld_json(page: TestResponse) -> list[dict]:
    """Give the parsed JSON of every ld+json script, failing if one is not JSON."""
    assert page.status_code == 200, page.status
    return [json.loads(script.string) for script in page.html.select(LD_JSON)]


def inline_scripts(page: TestResponse) -> list[str]:
    """Give the text of every script that is neither external nor JSON-LD (there should be none)."""
    return [
        script.get_text()
        for script in page.html.find_all("script")
        if not script.get("src") and script.get("type") != "application/ld+json"
    ]


def iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


@dataclass
class Pages:
    cast: Cast
    slugs: dict[str, str] = field(default_factory=dict)  # title -> slug


PROSE = " ".join(["word"] * 1200)


@pytest.fixture(scope="module")
def pages(shared_cast: Cast) -> Pages:
    """Posts of every shape, written once through the editor (SQLite)."""
    made = Pages(shared_cast)
    posts = {
        "Three headings": ("## Alpha\n\na\n\n## Beta\n\nb\n\n### Gamma\n\nc\n", "Python, Web"),
        "Two headings": ("## One\n\na\n\n## Two\n\nb\n", "Python"),
        "No headings": ("Just a paragraph.\n", ""),
        "Long read": (f"{PROSE}\n", "Python"),
        **{f"Filler {n}": (f"Filler number {n}.\n", "Web") for n in range(1, 9)},
    }
    for title, (body, tags) in posts.items():
        saved = write_post(shared_cast.author, title=title, body=body, tags=tags)
        made.slugs[title] = slug_of(saved)
    return made


# --- JSON-LD -----------------------------------------------------------------------------

HOSTILE_TITLES = [
    "</script><script>alert(1)</script>",
    "</SCRIPT ><script>alert(1)</script>",
    "</script\t><img src=x onerror=alert(1)>",
    "<!--<script>",
    "<script>",
    "]]>\"'&<>",
    "Line\u2028and\u2029paragraph separators",
    '{"@type": "Hack"}',
    'back\\slash and "quotes"',
    "Emoji 🎉 and 日本語 and العربية",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_post_carries_one_blogposting_whatever_its_title(pages: Pages, title: str) -> None:
    cast = pages.cast
    slug = slug_of(write_post(cast.author, title=title, body="Body.", tags="</script><b>, Safe"))
    page = cast.anonymous.get(f"/posts/{slug}")
    (data,) = ld_json(page)
    assert data["@type"] == "BlogPosting"
    assert data["headline"] == title
    assert set(data["keywords"].split(", ")) == {"</script><b>", "Safe"}
    assert inline_scripts(page) == []
    assert page.html.select_one("h1").get_text() == title
    assert page.html.select_one('meta[property="og:title"]')["content"] == title


def test_blogposting_describes_the_post(any_db_app: App) -> None:
    writer = any_db_app.test_client()
    assert signup_admin(writer, display_name="Ada Admin").status_code == 303
    slug = slug_of(write_post(writer, title="Described", body="Words here.", tags="Web, Python"))
    reader = any_db_app.test_client()
    page = reader.get(f"/posts/{slug}")
    (data,) = ld_json(page)
    post = stored_post(any_db_app, slug)
    canonical = page.html.select_one('link[rel="canonical"]')["href"]
    assert canonical == f"{BASE}/posts/{slug}"
    assert data["@context"] == "https://schema.org"
    assert data["url"] == data["mainEntityOfPage"] == canonical
    author = {"@type": "Person", "name": "Ada Admin", "url": f"{BASE}/authors/admin"}
    assert data["author"] == author
    assert data["datePublished"] == iso(post.published_at)
    assert data["dateModified"] == iso(post.updated_at)
    assert data["keywords"] == "Python, Web"
    assert data["description"] == post.summary

    later = utcnow() + timedelta(days=3)
    set_clock(lambda: later)
    try:
        assert edit_post(writer, slug, body="New words.").status_code == 303
        (edited,) = ld_json(reader.get(f"/posts/{slug}"))
    finally:
        set_clock(None)
    assert edited["datePublished"] == data["datePublished"]
    assert datetime.fromisoformat(edited["dateModified"]) >= later.replace(microsecond=0)


def test_an_author_name_cannot_break_out_of_the_json_ld(shared_cast: Cast) -> None:
    name = "Eve </script><script>alert(2)</script>"
    password = "eve passphrase 1"
    created = create_author(shared_cast.admin, "eve", password=password, display_name=name)
    assert created.status_code == 303
    eve = shared_cast.app.test_client()
    assert login(eve, "eve", password).status_code == 303
    slug = slug_of(write_post(eve, title="By Eve", body="Hello."))
    page = shared_cast.anonymous.get(f"/posts/{slug}")
    (data,) = ld_json(page)
    assert data["author"]["name"] == name
    assert inline_scripts(page) == []


def test_unpublished_posts_carry_no_blogposting(pages: Pages) -> None:
    cast = pages.cast
    draft = slug_of(write_post(cast.author, title="Private draft", status="draft"))
    future = (utcnow() + timedelta(days=1)).astimezone(cast.app.extensions["timezone"])
    scheduled = slug_of(
        write_post(cast.author, title="Later", publish_at=future.strftime("%Y-%m-%dT%H:%M"))
    )
    for slug in (draft, scheduled):
        page = cast.author.get(f"/posts/{slug}")  # only its author can see it
        assert ld_json(page) == []
        assert page.html.select_one('meta[name="robots"]')["content"] == "noindex"


def test_home_page_describes_the_site_and_its_search(pages: Pages) -> None:
    reader = pages.cast.anonymous
    (data,) = ld_json(reader.get("/"))
    assert data["@type"] == "WebSite"
    assert data["url"] == f"{BASE}/"
    action = data["potentialAction"]
    assert action["@type"] == "SearchAction"
    assert action["query-input"] == "required name=search_term_string"
    template = action["target"]["urlTemplate"]
    assert template == f"{BASE}/search?q={{search_term_string}}"
    results = reader.get(template.replace("{search_term_string}", "gamma").removeprefix(BASE))
    titles = [a.get_text() for a in results.html.select("article.search-hit h2 a")]
    assert titles == ["Three headings"]


# --- canonical, description, OpenGraph ---------------------------------------------------


def page_kinds(pages: Pages) -> dict[str, tuple[str, str]]:
    """Give name -> (path to load, its canonical URL) for every kind of reader page."""
    slug = pages.slugs["Three headings"]
    return {
        "home": ("/", f"{BASE}/"),
        "home, page 2": ("/?page=2", f"{BASE}/?page=2"),
        "home with tracking": ("/?utm_source=feed", f"{BASE}/"),
        "archive": ("/posts", f"{BASE}/posts"),
        "archive, page 1": ("/posts?page=1", f"{BASE}/posts"),
        "archive, page 2": ("/posts?page=2", f"{BASE}/posts?page=2"),
        "post": (f"/posts/{slug}", f"{BASE}/posts/{slug}"),
        "post with a query": (f"/posts/{slug}?ref=x&utm_source=y", f"{BASE}/posts/{slug}"),
        "tags": ("/tags", f"{BASE}/tags"),
        "tag": ("/tags/python", f"{BASE}/tags/python"),
        "author": ("/authors/alice", f"{BASE}/authors/alice"),
    }


KINDS = [
    "home", "home, page 2", "home with tracking", "archive", "archive, page 1",
    "archive, page 2", "post", "post with a query", "tags", "tag", "author",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_every_page_names_its_canonical_url(pages: Pages, kind: str) -> None:
    path, canonical = page_kinds(pages)[kind]
    page = pages.cast.anonymous.get(path)
    assert page.status_code == 200
    links = page.html.select('link[rel="canonical"]')
    assert [link["href"] for link in links] == [canonical]


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/tags/PYTHON", f"{BASE}/tags/python"),
        ("/tags/Python", f"{BASE}/tags/python"),
        ("/authors/ALICE", f"{BASE}/authors/alice"),
    ],
)
def test_other_spellings_of_a_page_name_the_one_canonical_url(
    pages: Pages, path: str, canonical: str
) -> None:
    page = pages.cast.anonymous.get(path, follow_redirects=True)
    assert page.status_code == 200
    assert [link["href"] for link in page.html.select('link[rel="canonical"]')] == [canonical]


@pytest.mark.parametrize("path", ["/posts/three-headings?page=2", "/tags?page=7"])
def test_a_page_argument_on_a_page_without_pages_is_not_canonical(pages: Pages, path: str):
    page = pages.cast.anonymous.get(path)
    assert page.status_code == 200
    canonical = page.html.select_one('link[rel="canonical"]')["href"]
    assert canonical == BASE + path.split("?")[0]


def expected_description(pages: Pages, kind: str) -> str | None:
    """Give the exact description a page kind must have, or None where any text will do."""
    if kind.startswith("home"):
        return SITE_DESCRIPTION
    if kind.startswith("post"):
        return stored_post(pages.cast.app, pages.slugs["Three headings"]).summary
    return {
        "archive": "Every post published on PyProject.",
        "tags": "Every tag on PyProject, with its number of posts.",
        "tag": "Posts about Python on PyProject.",
        "author": "Posts by Alice Author on PyProject.",
    }.get(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_every_page_has_one_meta_description(pages: Pages, kind: str) -> None:
    page = pages.cast.anonymous.get(page_kinds(pages)[kind][0])
    descriptions = [m["content"] for m in page.html.select('meta[name="description"]')]
    assert len(descriptions) == 1 and descriptions[0].strip()
    expected = expected_description(pages, kind)
    if expected is not None:
        assert descriptions[0] == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_page_has_opengraph(pages: Pages, kind: str) -> None:
    path, canonical = page_kinds(pages)[kind]
    page = pages.cast.anonymous.get(path)
    og = {m["property"]: m["content"] for m in page.html.select('meta[property^="og:"]')}
    assert {"og:title", "og:type", "og:url", "og:description"} <= set(og)
    assert og["og:title"].strip()
    assert og["og:url"] == canonical
    description = page.html.select_one('meta[name="description"]')["content"]
    assert og["og:description"] == description
    if kind.startswith("post"):
        assert og["og:type"] == "article"
        assert og["og:title"] == "Three headings"
        tags = [m["content"] for m in page.html.select('meta[property="article:tag"]')]
        assert tags == ["Python", "Web"]
        assert page.html.select_one('meta[property="article:published_time"]')["content"]
    elif kind.startswith("home"):
        assert og["og:type"] == "website"


# --- reading aids ------------------------------------------------------------------------


def minutes_shown(item) -> int:
    text = item.select_one(".post-meta").get_text(" ", strip=True)
    number, unit = text.rsplit("·", 1)[-1].split()[:2]
    assert unit == "min", text
    return int(number)


LIST_PAGES = ["/", "/?page=2", "/posts", "/posts?page=2", "/tags/python", "/tags/web",
              "/authors/alice", "/search?q=headings", "/search?q=filler"]  # fmt: skip


@pytest.mark.parametrize("path", LIST_PAGES)
def test_every_list_item_shows_its_reading_time(pages: Pages, path: str) -> None:
    page = pages.cast.anonymous.get(path)
    items = page.html.select("main article.post-item")
    assert items, path
    for item in items:
        slug = item.select_one("a[href^='/posts/']")["href"].removeprefix("/posts/")
        assert minutes_shown(item) == stored_post(pages.cast.app, slug).reading_minutes, slug


def test_every_post_shows_its_reading_time(pages: Pages) -> None:
    shown = {}
    for title, slug in pages.slugs.items():
        page = pages.cast.anonymous.get(f"/posts/{slug}")
        shown[title] = minutes_shown(page.html.select_one("article.post header"))
        assert shown[title] == stored_post(pages.cast.app, slug).reading_minutes
    assert shown["Long read"] == 5  # 1,200 words at 230 a minute
    assert shown["No headings"] == 1


def contents(page: TestResponse) -> list[str] | None:
    """Give the targets of the table of contents' links, or None if the page has none."""
    toc = page.html.select("nav.toc")
    assert len(toc) <= 1
    return [a["href"] for a in toc[0].select("a[href]")] if toc else None


def test_a_post_with_three_headings_has_a_table_of_contents(pages: Pages) -> None:
    page = pages.cast.anonymous.get(f"/posts/{pages.slugs['Three headings']}")
    targets = contents(page)
    assert targets == ["#alpha", "#beta", "#gamma"]
    body = page.html.select_one(".post-body")
    for target in targets:
        assert body.select_one(target) is not None, target


@pytest.mark.parametrize("title", ["Two headings", "No headings", "Long read"])
def test_a_post_with_fewer_headings_has_none(pages: Pages, title: str) -> None:
    assert contents(pages.cast.anonymous.get(f"/posts/{pages.slugs[title]}")) is None


def test_the_table_of_contents_follows_edits(shared_cast: Cast) -> None:
    slug = slug_of(write_post(shared_cast.author, title="Shrinking", body="## A\n\n## B\n"))
    assert contents(shared_cast.anonymous.get(f"/posts/{slug}")) is None
    body = "## A\n\n## B\n\n## C\n\n## D\n"
    assert edit_post(shared_cast.author, slug, body=body).status_code == 303
    assert contents(shared_cast.anonymous.get(f"/posts/{slug}")) == ["#a", "#b", "#c", "#d"]
    assert edit_post(shared_cast.author, slug, body="## A\n\n## B\n").status_code == 303
    assert contents(shared_cast.anonymous.get(f"/posts/{slug}")) is None
