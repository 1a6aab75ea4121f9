"""Posts as readers find them: who may read what, drafts, lists, tags, views and page meta.

Writing, editing, previewing and deleting posts (the editor) is in tests/blog/test_editor.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from blog.conftest import (
    AUTHOR,
    BASE_URL,
    VISITORS,
    Cast,
    World,
    csrf_token,
    delete_post,
    edit_post,
    get_post,
    make_blog_app,
    make_cast,
    make_world,
    set_post,
    slug_of,
    utc_ago,
    views_of,
    write_post,
)
from pyproject.blog.db import get_database
from pyproject.blog.models import Post, Tag, post_tags
from pyproject.blog.posts import tag_slug
from pyproject.blog.reading import long_date
from pyproject.blog.stats import get_statistics
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

# --- the shared world: alice's published post and her draft -----------------------------


@pytest.fixture(scope="module")
def world(shared_cast: Cast) -> World:
    return make_world(shared_cast)


def is_login_redirect(response: TestResponse) -> bool:
    return response.status_code == 303 and (response.location or "").startswith("/login?next=")


LOGIN = "login"  # an expected answer: 303 to /login?next=...

# Expected answer per visitor: anonymous, author (alice), other author (bob), admin.
READS = [
    ("GET", "/", (200, 200, 200, 200)),
    ("HEAD", "/", (200, 200, 200, 200)),
    ("GET", "/posts", (200, 200, 200, 200)),
    ("GET", "/posts/{published}", (200, 200, 200, 200)),
    ("GET", "/posts/{draft}", (404, 200, 404, 200)),
    ("GET", "/posts/no-such-post", (404, 404, 404, 404)),
    ("GET", "/posts/new", (LOGIN, 200, 200, 200)),
    ("GET", "/posts/{published}/edit", (LOGIN, 200, 403, 200)),
    ("GET", "/posts/{draft}/edit", (LOGIN, 200, 404, 200)),
    ("GET", "/posts/no-such-post/edit", (LOGIN, 404, 404, 404)),
    ("POST", "/posts/preview", (LOGIN, 200, 200, 200)),
    ("GET", "/drafts", (LOGIN, 200, 200, 200)),
    ("GET", "/tags", (200, 200, 200, 200)),
    ("GET", "/tags/python", (200, 200, 200, 200)),
    ("GET", "/tags/no-such-tag", (404, 404, 404, 404)),
    ("GET", "/authors/alice", (200, 200, 200, 200)),
    ("GET", "/authors/nobody", (404, 404, 404, 404)),
    ("GET", "/account", (LOGIN, 200, 200, 200)),
    ("GET", "/admin/users", (LOGIN, 403, 403, 200)),
    ("GET", "/setup", (404, 404, 404, 404)),
    ("GET", "/login", (200, 303, 303, 303)),
    ("GET", "/logout", (405, 405, 405, 405)),
    ("DELETE", "/posts/{published}", (405, 405, 405, 405)),
]


@pytest.mark.parametrize(
    ("method", "path", "visitor", "expected"),
    [
        pytest.param(method, path, visitor, expected, id=f"{method} {path} as {visitor}")
        for method, path, answers in READS
        for visitor, expected in zip(VISITORS, answers, strict=True)
    ],
)
def test_who_may_read_what(
    world: World, method: str, path: str, visitor: str, expected: int | str
) -> None:
    client = world.cast.client(visitor)
    path = path.format(published=world.published, draft=world.draft)
    if method == "POST":
        data = {"csrf_token": csrf_token(client), "title": "T", "body": "**b**"}
        response = client.post(path, data=data)
    else:
        response = client.open(method, path)
    if expected == LOGIN:
        assert is_login_redirect(response), (response.status_code, response.location)
        assert response.location == "/login?next=" + quote(path, safe="")
    else:
        assert response.status_code == expected
    if method == "HEAD":
        assert response.data == b""


# --- what authors typed, as readers see it -----------------------------------------------


def test_what_authors_type_is_shown_as_text_never_as_markup(cast: Cast) -> None:
    hostile = '<img src=x onerror="alert(1)"> & </title><script>alert(2)</script>'
    slug = slug_of(write_post(cast.author, title=hostile, summary=hostile, tags="<b>bold</b>"))
    for path in ("/", f"/posts/{slug}", "/tags", "/authors/alice"):
        page = cast.anonymous.get(path)
        assert page.html.select("img[onerror], b, main script") == [], path
        assert "<script>alert(2)" not in page.text
    page = cast.anonymous.get(f"/posts/{slug}")
    assert page.html.h1.get_text() == hostile
    assert meta(page, "property", "og:title") == hostile


# --- drafts ------------------------------------------------------------------------------


def titles_on(page: TestResponse, selector: str = "article.post-item h2 a") -> list[str]:
    return [a.get_text(strip=True) for a in page.html.select(selector)]


def test_drafts_appear_on_no_public_page(world: World) -> None:
    reader = world.cast.anonymous
    for path in ("/", "/posts", "/tags/python", "/authors/alice", "/tags"):
        assert "Alice's secret" not in reader.get(path).text
    assert "Alice in public" in reader.get("/").text


def drafts_rows(client: TestClient) -> dict[str, str]:
    page = client.get("/drafts")
    return {
        row.a.get_text(strip=True): row.get_text(" ", strip=True)
        for row in page.html.select("tbody tr")
    }


def test_the_drafts_page_lists_own_posts_and_admins_see_all(cast: Cast) -> None:
    write_post(cast.author, title="Alice's secret", status="draft")
    write_post(cast.author, title="Alice in public")
    write_post(cast.other, title="Bob's draft", status="draft")
    own = drafts_rows(cast.author)
    assert set(own) == {"Alice's secret", "Alice in public"}
    assert "Draft" in own["Alice's secret"] and "Published" in own["Alice in public"]
    assert set(drafts_rows(cast.other)) == {"Bob's draft"}
    everyone = drafts_rows(cast.admin)
    assert set(everyone) == {"Alice's secret", "Alice in public", "Bob's draft"}
    assert AUTHOR.display_name in everyone["Alice's secret"]


# --- lists and pagination ----------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    """A blog with eleven published posts by alice (all tagged "paged") and one draft."""
    app = make_blog_app(tmp_path_factory.mktemp("paged"))
    cast = make_cast(app)
    for n in range(1, 12):
        write_post(cast.author, title=f"Post number {n}", tags="paged")
    write_post(cast.author, title="Unfinished", status="draft", tags="paged")
    yield cast
    get_database(app).dispose()


LISTS = ["/", "/posts", "/tags/paged", "/authors/alice"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("page", "status"),
    [
        ("1", 200),
        ("2", 200),
        ("3", 404),
        ("0", 404),
        ("-1", 404),
        ("abc", 404),
        ("1.5", 404),
        ("99999", 404),
        ("99999999999999999999", 404),
        ("01", 404),
        ("", 404),
        ("+2", 404),
        ("%202", 404),
        ("2&page=3", 200),
        ("%C2%B2", 404),
        ("%EF%BC%92", 404),
    ],
)
def test_pagination_edges(paged: Cast, path: str, page: str, status: int) -> None:
    assert paged.anonymous.get(f"{path}?page={page}").status_code == status


def list_selector(path: str) -> str:
    if path == "/posts":  # the archive, under its year and month headings (#23)
        return "article.post-item h4 a"
    return "article.post-item h3 a" if path.startswith("/authors/") else "article.post-item h2 a"


@pytest.mark.parametrize("path", LISTS)
def test_lists_show_ten_newest_first_then_the_rest(paged: Cast, path: str) -> None:
    first = paged.anonymous.get(path)
    assert titles_on(first, list_selector(path)) == [f"Post number {n}" for n in range(11, 1, -1)]
    older = first.html.select_one('a[rel="next"]')["href"]
    assert first.html.select_one('a[rel="prev"]') is None
    second = paged.anonymous.get(older)
    assert unquote(older).endswith("page=2")
    assert titles_on(second, list_selector(path)) == ["Post number 1"]
    assert second.html.select_one('a[rel="next"]') is None
    newer = second.html.select_one('a[rel="prev"]')["href"]
    assert "page=" not in newer  # page 1 has one address
    assert paged.anonymous.get(newer).status_code == 200


def test_an_empty_blog_has_a_first_page_only(cast: Cast) -> None:
    assert cast.anonymous.get("/").status_code == 200
    assert "Nothing is published yet." in cast.anonymous.get("/posts").text
    assert cast.anonymous.get("/?page=2").status_code == 404


def test_list_items_show_title_author_date_summary_tags_and_reading_time(cast: Cast) -> None:
    slug = slug_of(
        write_post(
            cast.author,
            title="Everything shown",
            body="A short first paragraph.\n\n" + "word " * 700,
            tags="Show, tell",
        )
    )
    set_post(cast.app, slug, published_at=utc_ago(days=3, hours=1))
    for path in ("/", "/posts", "/tags/show"):
        item = cast.anonymous.get(path).html.select_one("article.post-item")
        assert item.select_one(".post-item-title a")["href"] == f"/posts/{slug}"
        assert item.select_one(".post-item-title").get_text(strip=True) == "Everything shown"
        author = item.select_one(".post-meta a")
        assert author["href"] == "/authors/alice"
        assert author.get_text(strip=True) == AUTHOR.display_name
        time = item.select_one("time[datetime]")
        assert time["datetime"].startswith(utc_ago(days=3, hours=1).date().isoformat())
        # A date as a date (#23); the page's script adds "(3 days ago)" within a week.
        zone = ZoneInfo(cast.app.config["TIMEZONE"])
        assert time.get_text(strip=True) == long_date(utc_ago(days=3, hours=1), zone)
        minutes = get_post(cast.app, slug).reading_minutes
        assert minutes >= 3
        assert f"{minutes} min read" in item.select_one(".post-meta").get_text(" ", strip=True)
        assert item.select_one(".summary").get_text(strip=True) == "A short first paragraph."
        assert [a.get_text() for a in item.select("ul.tags a")] == ["Show", "tell"]


# --- tags --------------------------------------------------------------------------------


def test_tags_keep_their_unicode_names_and_are_deduplicated(cast: Cast) -> None:
    slug = slug_of(
        write_post(
            cast.author,
            title="Tagged",
            tags="Python, python ,PYTHON, Café au lait, 日本語, Ελληνικά,  spaced   out ",
        )
    )
    page = cast.anonymous.get(f"/posts/{slug}")
    links = {a.get_text(): a["href"] for a in page.html.select("ul.tags a")}
    assert set(links) == {"Python", "Café au lait", "日本語", "Ελληνικά", "spaced out"}
    for name, href in links.items():
        tag_page = cast.anonymous.get(href)
        assert tag_page.status_code == 200, href
        assert name in tag_page.html.h1.get_text()
        assert titles_on(tag_page) == ["Tagged"]
    index = cast.anonymous.get("/tags")
    assert {a.get_text() for a in index.html.select("ul.tag-index a")} == set(links)
    assert cast.anonymous.get("/tags/" + quote("日本語")).status_code == 200


def test_the_tag_index_counts_published_posts_only(cast: Cast) -> None:
    write_post(cast.author, title="One", tags="counted")
    write_post(cast.other, title="Two", tags="Counted")
    write_post(cast.author, title="Three", tags="counted, hidden", status="draft")
    rows = {
        li.a.get_text(): li.get_text(" ", strip=True)
        for li in cast.anonymous.get("/tags").html.select("ul.tag-index li")
    }
    assert rows == {"counted": "counted 2 posts"}
    assert titles_on(cast.anonymous.get("/tags/counted")) == ["Two", "One"]
    other_spelling = cast.anonymous.get("/tags/COUNTED")
    assert other_spelling.status_code == 301
    assert other_spelling.location == "/tags/counted"


# --- views and popularity ----------------------------------------------------------------


def views(app: App, slug: str) -> int:
    return views_of(app, slug)


def test_core_post_flow_on_every_database(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Hello, Wörld", tags="Python, Café"))
    draft = slug_of(write_post(cast.author, title="Hello, Wörld", status="draft"))
    assert (slug, draft) == ("hello-world", "hello-world-2")

    assert titles_on(cast.anonymous.get("/")) == ["Hello, Wörld"]
    for _ in range(3):
        assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    assert views(cast.app, slug) == 3
    assert cast.author.get(f"/posts/{slug}").status_code == 200  # her own view
    assert views(cast.app, slug) == 3
    cast.other.get(f"/posts/{slug}")
    cast.admin.get(f"/posts/{slug}")
    assert views(cast.app, slug) == 5

    assert [cast.client(v).get(f"/posts/{draft}").status_code for v in VISITORS] == [
        404,
        200,
        404,
        200,
    ]
    assert views(cast.app, draft) == 0

    assert titles_on(cast.anonymous.get("/tags/python")) == ["Hello, Wörld"]
    assert titles_on(cast.anonymous.get("/authors/alice"), list_selector("/authors/")) == [
        "Hello, Wörld"
    ]
    assert edit_post(cast.author, slug, title="Hello again").status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").html.h1.get_text(strip=True) == "Hello again"
    assert delete_post(cast.author, slug).status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").status_code in (404, 410)
    assert titles_on(cast.anonymous.get("/")) == []


def test_a_post_page_lists_its_tags_in_the_databases_order_of_names(any_db_cast: Cast) -> None:
    # The tags come with the post's row (#13): as the database orders names, each tag's
    # own address, and none of another post's.
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Tagged", tags="zeta, Alpha, émile, beta, Zed"))
    write_post(cast.author, title="Other", tags="gamma")
    untagged = slug_of(write_post(cast.author, title="Untagged"))
    with get_database(cast.app).read() as db:
        expected = list(
            db.scalars(
                select(Tag.name)
                .join(post_tags, post_tags.c.tag_id == Tag.id)
                .join(Post, Post.id == post_tags.c.post_id)
                .where(Post.slug == slug)
                .order_by(Tag.name)
            )
        )
    assert len(expected) == 5
    page = cast.anonymous.get(f"/posts/{slug}").html
    links = page.select("article ul.tags a")
    assert [a.get_text() for a in links] == expected
    assert [unquote(a["href"]) for a in links] == [f"/tags/{tag_slug(n)}" for n in expected]
    assert cast.anonymous.get(f"/posts/{untagged}").html.select("article ul.tags a") == []


def popular_titles(client: TestClient) -> list[str]:
    return [a.get_text(strip=True) for a in client.get("/").html.select("ol.popular li a")]


BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def read_this_week(app: App, slug: str, *per_day: int) -> None:
    """Give a post day counts (#22): per_day[0] today, per_day[1] yesterday..."""
    stats = get_statistics(app)
    post_id = get_post(app, slug).id
    for back, count in enumerate(per_day):
        stats.add_views(stats.day() - timedelta(days=back), {post_id: count})


def test_popular_this_week_is_the_five_most_read_of_the_last_seven_days(cast: Cast) -> None:
    readings = {"Ten": 10, "Fifty": 50, "Thirty": 30, "Zero": 0, "Five": 5, "Forty": 40}
    for title, count in readings.items():
        slug = slug_of(write_post(cast.author, title=title))
        # An old post read this week counts: the week's reading, not the post's age.
        set_post(cast.app, slug, view_count=1000, published_at=utc_ago(days=60))
        read_this_week(cast.app, slug, count - count // 2, 0, 0, 0, 0, 0, count // 2)
    old = slug_of(write_post(cast.author, title="Old favourite"))
    read_this_week(cast.app, old, 0, 0, 0, 0, 0, 0, 0, 1000)  # eight days ago
    hidden = slug_of(write_post(cast.author, title="Draft favourite", status="draft"))
    read_this_week(cast.app, hidden, 5000)
    assert popular_titles(cast.anonymous) == ["Fifty", "Forty", "Thirty", "Ten", "Five"]
    sidebar = cast.anonymous.get("/").html.select_one("ol.popular").get_text(" ", strip=True)
    assert "50 reads" in sidebar


def test_reading_a_post_moves_it_up_the_popular_list(cast: Cast) -> None:
    first = slug_of(write_post(cast.author, title="First"))
    second = slug_of(write_post(cast.author, title="Second"))
    read_this_week(cast.app, first, 2)
    read_this_week(cast.app, second, 1)
    assert popular_titles(cast.author) == ["First", "Second"]
    for address in ("192.0.2.1", "192.0.2.2"):  # two readers' browsers
        reader = cast.app.test_client(environ_overrides={"REMOTE_ADDR": address})
        reader.get(f"/posts/{second}", headers={"User-Agent": BROWSER_AGENT})
    assert popular_titles(cast.author) == ["Second", "First"]


# --- page meta ---------------------------------------------------------------------------


def meta(page: TestResponse, attribute: str, name: str) -> str | None:
    tag = page.html.select_one(f'meta[{attribute}="{name}"]')
    return tag["content"] if tag is not None else None


PUBLIC_PAGES = [
    "/",
    "/?page=1",
    "/posts",
    "/posts/{published}",
    "/tags",
    "/tags/python",
    "/authors/alice",
]
PRIVATE_PAGES = ["/posts/new", "/drafts", "/account", "/posts/{draft}", "/posts/{published}/edit"]


@pytest.mark.parametrize("path", PUBLIC_PAGES + PRIVATE_PAGES + ["/posts/no-such-post"])
def test_every_page_has_a_title_and_a_description(world: World, path: str) -> None:
    page = world.cast.author.get(path.format(published=world.published, draft=world.draft))
    assert page.html.title.get_text(strip=True)
    assert meta(page, "name", "description")


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_pages_have_a_canonical_url_from_base_url(world: World, path: str) -> None:
    path = path.format(published=world.published, draft=world.draft)
    page = world.cast.anonymous.get(path)
    canonical = page.html.select_one('link[rel="canonical"]')["href"]
    assert canonical == BASE_URL + path.removesuffix("?page=1")


def test_a_later_page_s_canonical_url_names_the_page(paged: Cast) -> None:
    page = paged.anonymous.get("/posts?page=2")
    assert page.html.select_one('link[rel="canonical"]')["href"] == BASE_URL + "/posts?page=2"


def test_posts_have_open_graph_and_twitter_card_tags(world: World) -> None:
    page = world.cast.anonymous.get(f"/posts/{world.published}")
    url = f"{BASE_URL}/posts/{world.published}"
    assert page.html.title.get_text() == "Alice in public · PyProject"
    assert meta(page, "name", "description") == "Down the rabbit hole."
    assert meta(page, "property", "og:type") == "article"
    assert meta(page, "property", "og:title") == "Alice in public"
    assert meta(page, "property", "og:description") == "Down the rabbit hole."
    assert meta(page, "property", "og:url") == url
    assert meta(page, "name", "twitter:card") == "summary"
    assert meta(page, "name", "twitter:title") == "Alice in public"
    assert meta(page, "name", "twitter:description") == "Down the rabbit hole."
    assert {t["content"] for t in page.html.select('meta[property="article:tag"]')} == {
        "python",
        "Café",
    }


def test_base_url_is_where_canonical_urls_point(make_app, tmp_path: Path) -> None:
    app = make_app(BASE_URL="https://blog.example/")
    client = app.test_client(base_url="https://blog.example")
    page = client.get("/posts")
    assert page.html.select_one('link[rel="canonical"]')["href"] == "https://blog.example/posts"
