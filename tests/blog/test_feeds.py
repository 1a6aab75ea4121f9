"""Feeds (Atom, RSS; site-wide, per tag, per author), the sitemap and robots.txt.

Every feed is read the way feed readers read it, with feedparser (which must find nothing
malformed: `bozo` false), and the exact stored HTML is checked in the raw XML, since
feedparser sanitises and rebases what it gives back.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.robotparser import RobotFileParser

import feedparser
import pytest

from blog.conftest import (
    AUTHOR,
    create_author,
    delete_post,
    get_post,
    login,
    signup_admin,
    slug_of,
    write_post,
)
from blog.test_search import module_app
from pyproject.blog import feeds
from pyproject.blog.models import set_clock, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

BASE = "http://localhost"
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@dataclass
class Blog:
    app: App
    admin: TestClient
    alice: TestClient
    reader: TestClient
    visible: dict[str, str] = field(default_factory=dict)  # title -> slug
    hidden: dict[str, str] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)  # title -> tag names


def local_input(app: App, when: datetime) -> str:
    return when.astimezone(app.extensions["timezone"]).strftime("%Y-%m-%dT%H:%M")


def make_blog(app: App) -> Blog:
    """An admin, Alice (who publishes), Carol (who has only a draft), and hidden posts."""
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    alice = app.test_client()
    for username, name in ((AUTHOR.username, "Alice Author"), ("carol", "Carol Quiet")):
        created = create_author(admin, username, password=AUTHOR.password, display_name=name)
        assert created.status_code == 303
    assert login(alice, AUTHOR.username, AUTHOR.password).status_code == 303
    carol = app.test_client()
    assert login(carol, "carol", AUTHOR.password).status_code == 303
    blog = Blog(app, admin, alice, app.test_client())

    body = (
        "# Start\n\nSome *words* & a [link](https://example.com/?a=1&b=2).\n\n"
        "```python\nx = 1 < 2\n```\n"
    )
    for client, title, tags in (
        (alice, "First light", "Python, Web Dev"),
        (alice, "Second thoughts", "Python"),
        (admin, "Admin notes", "Meta"),
    ):
        blog.visible[title] = slug_of(write_post(client, title=title, body=body, tags=tags))
        blog.tags[title] = {t.strip() for t in tags.split(",")}
    future = local_input(app, utcnow() + timedelta(days=1))
    for client, title, fields in (
        (alice, "Draft idea", {"status": "draft", "tags": "Drafts Only"}),
        (alice, "Future plans", {"publish_at": future, "tags": "Later, Python"}),
        (alice, "Gone soon", {"tags": "Trashy"}),
        (carol, "Carol's draft", {"status": "draft"}),
    ):
        blog.hidden[title] = slug_of(write_post(client, title=title, body=body, **fields))
    assert delete_post(alice, blog.hidden["Gone soon"]).status_code == 303
    return blog


@pytest.fixture
def blog(any_db_app: App) -> Blog:
    """The blog on SQLite, then on PostgreSQL, for a test that changes it."""
    return make_blog(any_db_app)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_blog(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Blog]:
    """The blog on SQLite, then on PostgreSQL, shared by the tests that only read it."""
    with module_app(request.param, tmp_path_factory.mktemp("feeds"), "readers_feeds") as app:
        yield make_blog(app)


@pytest.fixture
def sqlite_blog(app: App) -> Blog:
    return make_blog(app)


@pytest.fixture
def clock() -> Iterator[Callable[[datetime], None]]:
    """Move the app's clock; it is always put back."""

    def move_to(when: datetime) -> None:
        set_clock(lambda: when)

    yield move_to
    set_clock(None)


def parse_feed(response: TestResponse) -> feedparser.FeedParserDict:
    assert response.status_code == 200, response.status
    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def post_url(slug: str) -> str:
    return f"{BASE}/posts/{slug}"


# --- Atom and RSS ------------------------------------------------------------------------


def test_site_atom_feed_is_valid_and_complete(shared_blog: Blog) -> None:
    response = shared_blog.reader.get("/feed.atom")
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    feed = parse_feed(response)
    assert feed.version == "atom10"
    assert feed.feed.title == "PyProject"
    assert feed.feed.id == f"{BASE}/feed.atom"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"alternate": f"{BASE}/", "self": f"{BASE}/feed.atom"}
    assert feed.feed.updated_parsed is not None

    assert [e.title for e in feed.entries] == ["Admin notes", "Second thoughts", "First light"]
    raw = {
        entry.findtext(f"{ATOM}title"): entry
        for entry in ET.fromstring(response.data).iter(f"{ATOM}entry")
    }
    for entry in feed.entries:
        slug = shared_blog.visible[entry.title]
        post = get_post(shared_blog.app, slug)
        assert entry.link == post_url(slug)
        assert entry.id.startswith("tag:localhost,")
        assert entry.published_parsed and entry.updated_parsed
        assert entry.author == post.author.name
        assert entry.author_detail.href == f"{BASE}/authors/{post.author.username}"
        assert {tag.term for tag in entry.tags} == shared_blog.tags[entry.title]
        assert entry.summary == post.summary
        assert entry.content[0].type == "text/html"
        content = raw[entry.title].find(f"{ATOM}content")
        assert content.text == post.body_html
        assert content.get("{http://www.w3.org/XML/1998/namespace}base") == post_url(slug)
    assert len({entry.id for entry in feed.entries}) == 3


def test_site_rss_feed_is_valid_and_complete(shared_blog: Blog) -> None:
    response = shared_blog.reader.get("/feed.rss")
    assert response.headers["Content-Type"].startswith("application/rss+xml")
    feed = parse_feed(response)
    assert feed.version == "rss20"
    assert feed.feed.title == "PyProject"
    assert feed.feed.link == f"{BASE}/"
    assert [e.title for e in feed.entries] == ["Admin notes", "Second thoughts", "First light"]

    atom_ids = {e.title: e.id for e in parse_feed(shared_blog.reader.get("/feed.atom")).entries}
    raw = {item.findtext("title"): item for item in ET.fromstring(response.data).iter("item")}
    for entry in feed.entries:
        slug = shared_blog.visible[entry.title]
        post = get_post(shared_blog.app, slug)
        assert entry.link == post_url(slug)
        assert entry.id == atom_ids[entry.title]  # the same entry in both formats
        assert entry.published_parsed is not None
        assert entry.author == post.author.name
        assert {tag.term for tag in entry.tags} == shared_blog.tags[entry.title]
        assert raw[entry.title].findtext(CONTENT) == post.body_html
        assert entry.content[0].value  # content:encoded, as readers see it


def test_feeds_hold_the_twenty_newest_published_posts(any_db_app: App) -> None:
    writer = any_db_app.test_client()
    assert signup_admin(writer).status_code == 303
    titles = [f"Post number {n}" for n in range(1, 23)]
    for title in titles:
        assert write_post(writer, title=title, body=f"Body of {title}.").status_code == 303
    write_post(writer, title="Newer draft", body="Not yet.", status="draft")
    future = local_input(any_db_app, utcnow() + timedelta(days=2))
    write_post(writer, title="Newer scheduled", body="Not yet.", publish_at=future)

    reader = any_db_app.test_client()
    for path in ("/feed.atom", "/feed.rss"):
        feed = parse_feed(reader.get(path))
        assert [entry.title for entry in feed.entries] == titles[::-1][:20], path
        assert all(entry.get("content") for entry in feed.entries), path


def test_tag_feed_holds_the_tags_published_posts_only(shared_blog: Blog) -> None:
    feed = parse_feed(shared_blog.reader.get("/tags/python/feed.atom"))
    assert feed.feed.title == "PyProject: Posts tagged “Python”"
    assert {link.rel: link.href for link in feed.feed.links}["alternate"] == f"{BASE}/tags/python"
    assert [e.title for e in feed.entries] == ["Second thoughts", "First light"]
    assert shared_blog.reader.get("/tags/no-such-tag/feed.atom").status_code == 404


def test_author_feed_holds_the_authors_published_posts_only(shared_blog: Blog) -> None:
    feed = parse_feed(shared_blog.reader.get("/authors/alice/feed.atom"))
    assert feed.feed.title == "PyProject: Posts by Alice Author"
    alternate = {link.rel: link.href for link in feed.feed.links}["alternate"]
    assert alternate == f"{BASE}/authors/alice"
    assert [e.title for e in feed.entries] == ["Second thoughts", "First light"]

    assert parse_feed(shared_blog.reader.get("/authors/carol/feed.atom")).entries == []
    assert shared_blog.reader.get("/authors/nobody/feed.atom").status_code == 404


def test_a_scheduled_post_enters_the_feeds_when_it_is_due(shared_blog: Blog, clock) -> None:
    clock(utcnow() + timedelta(days=2))
    for path in ("/feed.atom", "/feed.rss", "/tags/python/feed.atom", "/authors/alice/feed.atom"):
        titles = [e.title for e in parse_feed(shared_blog.reader.get(path)).entries]
        assert titles[0] == "Future plans", path


def test_a_feeds_updated_time_is_never_older_than_its_newest_entry(sqlite_blog: Blog, clock):
    clock(utcnow() + timedelta(days=2))
    atom = parse_feed(sqlite_blog.reader.get("/feed.atom"))
    newest = max(max(e.updated_parsed, e.published_parsed) for e in atom.entries)
    assert atom.feed.updated_parsed >= newest
    rss = parse_feed(sqlite_blog.reader.get("/feed.rss"))
    assert rss.feed.updated_parsed >= max(e.published_parsed for e in rss.entries)


FEED_PATHS = ["/feed.atom", "/feed.rss", "/tags/python/feed.atom", "/authors/alice/feed.atom"]

HOSTILE_TEXT = [
    "Fish & Chips <b>bold</b> ]]> <![CDATA[x]]>",
    "</content></entry></feed></rss>",
    "Quotes \" and ' and ` and \\",
    "🎉 Party in 日本語 and العربية",
    "\u202eright-to-left override",
    "e\u0301 combining, \u200b zero width, \ufeff BOM",
    "Private use \ue000 and \U0010fffd and noncharacter \ufdd0",
    # Not XML characters: left out of the feed, which stays well-formed.
    "Noncharacter \ufffe",
    "Noncharacter \uffff",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=lambda t: repr(t[:20]))
def test_feeds_stay_well_formed_whatever_a_post_says(app: App, text: str) -> None:
    writer = app.test_client()
    assert signup_admin(writer).status_code == 303
    title = text[:200]
    saved = write_post(writer, title=title, body=f"{text}\n\n## {text}\n", tags=text[:40])
    assert saved.status_code == 303
    reader = app.test_client()
    for path in ("/feed.atom", "/feed.rss", "/authors/admin/feed.atom"):
        response = reader.get(path)
        assert len(parse_feed(response).entries) == 1, path
        # The exact title, from the XML itself: in RSS, feedparser reads titles as HTML.
        root = ET.fromstring(response.data)
        titles = [e.text for e in root.iter() if e.tag in ("title", f"{ATOM}title")]
        expected = title.replace("\ufffe", "").replace("\uffff", "")
        assert titles[-1].strip() == expected.strip(), path


# --- validators --------------------------------------------------------------------------


@pytest.mark.parametrize("path", FEED_PATHS)
def test_feeds_answer_revalidation_with_304(sqlite_blog: Blog, path: str) -> None:
    reader = sqlite_blog.reader
    first = reader.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = reader.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert reader.get(path, headers={"If-Modified-Since": modified}).status_code == 304


# --- autodiscovery -----------------------------------------------------------------------


def feed_links(page: TestResponse) -> dict[str, str]:
    return {
        link["href"]: link["type"]
        for link in page.html.select('head link[rel="alternate"]')
        if link.get("type") in (feeds.ATOM, feeds.RSS)
    }


def test_pages_point_feed_readers_at_their_feeds(sqlite_blog: Blog) -> None:
    reader = sqlite_blog.reader
    slug = sqlite_blog.visible["First light"]
    site = {"/feed.atom": feeds.ATOM, "/feed.rss": feeds.RSS}
    expected = {
        "/": site,
        "/posts": site,
        # a post links its comments' feed too (#18): empty until someone answers
        f"/posts/{slug}": {**site, f"/posts/{slug}/comments.atom": feeds.ATOM},
        "/tags": site,
        "/tags/python": {**site, "/tags/python/feed.atom": feeds.ATOM},
        "/authors/alice": {**site, "/authors/alice/feed.atom": feeds.ATOM},
    }
    for path, links in expected.items():
        assert feed_links(reader.get(path)) == links, path
    for href in {href for links in expected.values() for href in links}:
        parsed = parse_feed(reader.get(href))
        assert parsed.entries or href.endswith("/comments.atom"), href


# --- the sitemap -------------------------------------------------------------------------


def sitemap_urls(response: TestResponse) -> dict[str, str | None]:
    """Give loc -> lastmod of a <urlset>."""
    assert response.status_code == 200, response.status
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.data)
    assert root.tag == f"{SITEMAP}urlset"
    urls = {}
    for url in root.iter(f"{SITEMAP}url"):
        loc = url.findtext(f"{SITEMAP}loc")
        assert loc not in urls, f"{loc} listed twice"
        urls[loc] = url.findtext(f"{SITEMAP}lastmod")
    return urls


def expected_sitemap(blog: Blog) -> set[str]:
    posts = {post_url(slug) for slug in blog.visible.values()}
    tags = {f"{BASE}/tags/{slug}" for slug in ("python", "web-dev", "meta")}
    authors = {f"{BASE}/authors/alice", f"{BASE}/authors/admin"}
    return {f"{BASE}/", *posts, *tags, *authors}


def test_sitemap_lists_exactly_the_published_pages(shared_blog: Blog) -> None:
    urls = sitemap_urls(shared_blog.reader.get("/sitemap.xml"))
    assert set(urls) == expected_sitemap(shared_blog)
    for loc, lastmod in urls.items():
        if loc != f"{BASE}/":
            assert datetime.fromisoformat(lastmod).tzinfo is not None, loc
    for slug in shared_blog.visible.values():
        post = get_post(shared_blog.app, slug)
        assert datetime.fromisoformat(urls[post_url(slug)]) == post.updated_at.replace(
            microsecond=0
        )


def test_sitemap_follows_trash_and_schedule(blog: Blog, clock) -> None:
    assert delete_post(blog.alice, blog.visible["Second thoughts"]).status_code == 303
    urls = set(sitemap_urls(blog.reader.get("/sitemap.xml")))
    assert post_url(blog.visible["Second thoughts"]) not in urls

    clock(utcnow() + timedelta(days=2))
    urls = set(sitemap_urls(blog.reader.get("/sitemap.xml")))
    assert post_url(blog.hidden["Future plans"]) in urls
    assert f"{BASE}/tags/later" in urls


def test_sitemap_lastmod_is_not_before_publication(sqlite_blog: Blog, clock) -> None:
    clock(utcnow() + timedelta(days=2))
    urls = sitemap_urls(sqlite_blog.reader.get("/sitemap.xml"))
    post = get_post(sqlite_blog.app, sqlite_blog.hidden["Future plans"])
    published = post.published_at.replace(microsecond=0)
    for loc in (post_url(post.slug), f"{BASE}/tags/later", f"{BASE}/authors/alice"):
        assert datetime.fromisoformat(urls[loc]) >= published, loc


def test_a_large_sitemap_becomes_an_index_of_parts(
    blog: Blog, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = expected_sitemap(blog)  # 9 URLs
    monkeypatch.setattr(feeds, "SITEMAP_MAX_URLS", 4)
    response = blog.reader.get("/sitemap.xml")
    root = ET.fromstring(response.data)
    assert root.tag == f"{SITEMAP}sitemapindex"
    parts = [loc.text for loc in root.iter(f"{SITEMAP}loc")]
    assert parts == [f"{BASE}/sitemaps/{n}.xml" for n in (1, 2, 3)]

    seen: list[str] = []
    for part in parts:
        urls = sitemap_urls(blog.reader.get(part.removeprefix(BASE)))
        assert 1 <= len(urls) <= 4
        seen += list(urls)
    assert len(seen) == len(set(seen)) and set(seen) == everything
    for missing in ("/sitemaps/0.xml", "/sitemaps/4.xml", "/sitemaps/99999999.xml"):
        assert blog.reader.get(missing).status_code == 404, missing


@pytest.mark.parametrize("limit", range(1, 9))
def test_sitemap_parts_are_the_whole_sitemap_cut_in_order(
    sqlite_blog: Blog, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Each part reads only its slice (home, posts, tags, authors): the cuts must not
    drop, repeat or reorder an entry, wherever they fall."""
    whole = list(sitemap_urls(sqlite_blog.reader.get("/sitemap.xml")).items())
    assert len(whole) == 9
    monkeypatch.setattr(feeds, "SITEMAP_MAX_URLS", limit)
    parts: list[tuple[str, str | None]] = []
    for number in range(1, -(-len(whole) // limit) + 1):
        parts += list(sitemap_urls(sqlite_blog.reader.get(f"/sitemaps/{number}.xml")).items())
    assert parts == whole


@pytest.mark.parametrize(
    ("limit", "kind"), [(9, "urlset"), (8, "sitemapindex"), (1, "sitemapindex")]
)
def test_the_sitemap_splits_only_above_the_limit(
    sqlite_blog: Blog, monkeypatch: pytest.MonkeyPatch, limit: int, kind: str
) -> None:
    monkeypatch.setattr(feeds, "SITEMAP_MAX_URLS", limit)
    root = ET.fromstring(sqlite_blog.reader.get("/sitemap.xml").data)
    assert root.tag == f"{SITEMAP}{kind}"
    if kind == "sitemapindex":
        assert len(list(root.iter(f"{SITEMAP}sitemap"))) == -(-9 // limit)


# --- robots.txt --------------------------------------------------------------------------


def test_robots_txt_names_the_sitemap_and_keeps_crawlers_out_of_private_pages(
    client: TestClient,
) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert f"Sitemap: {BASE}/sitemap.xml" in lines
    for path in ("/admin", "/drafts", "/login", "/search"):
        assert f"Disallow: {path}" in lines

    robots = RobotFileParser()
    robots.parse(lines)
    assert robots.site_maps() == [f"{BASE}/sitemap.xml"]
    for path in ("/admin/users", "/drafts", "/login", "/search?q=x"):
        assert not robots.can_fetch("SomeBot", f"{BASE}{path}"), path
    for path in ("/", "/posts", "/posts/a-post", "/tags/python", "/feed.atom", "/sitemap.xml"):
        assert robots.can_fetch("SomeBot", f"{BASE}{path}"), path
