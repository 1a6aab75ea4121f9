"""Search: ranked full-text search over published posts, the same tests on SQLite and PostgreSQL.

Most tests read one corpus built once per database (`corpus`): a few posts written through
the editor, more inserted with the editor's own helpers, and hidden posts (drafts, scheduled,
trashed) that contain every word the tests search for, so that a leak would show. On
PostgreSQL the corpus lives in a schema of its own, so the function-scoped `any_db_app`
tests of this module (which reset the public schema) cannot pull it from under the others.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import make_url

from blog.conftest import (
    ADMIN,
    AUTHOR,
    OTHER,
    Cast,
    delete_post,
    edit_post,
    form_of,
    local_input,
    make_cast,
    signup_admin,
    slug_of,
    write_post,
)
from pyproject.blog import search as search_module
from pyproject.blog.db import get_database
from pyproject.blog.editor import add_revision, render_onto, set_tags, unique_slug
from pyproject.blog.markup import render_markdown
from pyproject.blog.models import Post, User, set_clock, utcnow
from pyproject.blog.posts import tag_slug
from pyproject.blog.search import QUERY_MAX, search
from pyproject.blog.slugs import slugify
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import POSTGRES_URL, build_app, postgres_unavailable_reason

FILLER = (
    "Gardens need water, patience and a little sunlight every single day. "
    "Tomatoes climb the fence while the beans argue with the peas about space. "
)
# Every hidden post holds each word the tests look for, and one word no visible post has.
HIDDEN_WORDS = "secret quokka wombat axolotl numbat heron crème 日本語 gardens"
SCHEMA = "readers_search"


# --- the corpus --------------------------------------------------------------------------


@dataclass
class Corpus:
    app: App
    cast: Cast
    visible: dict[str, str] = field(default_factory=dict)  # slug -> title
    hidden: set[str] = field(default_factory=set)
    by_title: dict[str, str] = field(default_factory=dict)  # title -> slug

    @property
    def reader(self) -> TestClient:
        return self.cast.anonymous

    def slug(self, title: str) -> str:
        return self.by_title[title]


def insert_post(
    app: App,
    username: str,
    title: str,
    body: str,
    *,
    tags: tuple[str, ...] = (),
    published_at: datetime | None = None,
) -> str:
    """Add a published post with the editor's own helpers (as a save would); give its slug."""
    with get_database(app).write() as db:
        author = db.scalar(select(User).where(User.username == username))
        when = published_at or utcnow()
        post = Post(
            author_id=author.id,
            slug=unique_slug(db, slugify(title) or "post"),
            title=title,
            status="published",
            published_at=when,
            created_at=when,
            updated_at=when,
            revision=0,
        )
        render_onto(post, body, render_markdown(body), "")
        set_tags(db, post, [(name, tag_slug(name)) for name in tags])
        db.add(post)
        db.flush()
        add_revision(db, post, "save", author, "")
        return post.slug


def write(corpus: Corpus, client: TestClient, title: str, body: str, **fields: str) -> str:
    slug = slug_of(write_post(client, title=title, body=body, **fields))
    corpus.by_title[title] = slug
    return slug


def fill_corpus(corpus: Corpus) -> None:
    cast, app = corpus.cast, corpus.app
    published = {
        "Quokka field notes": FILLER,
        "Island wildlife": "On the ferry we saw a quokka near the jetty. " + FILLER,
        "Ferry timetables": FILLER * 3 + "Later that week, a quokka.",
        "Wombat burrows": FILLER * 3,
        "Night drive": "A wombat here, a wombat there, a wombat everywhere. " + FILLER * 3,
        "Markup in snippets": (
            "Beware <script>alert(1)</script> of the axolotl & its <b>friends</b> in `code`. "
            + FILLER
        ),
        "Crème brûlée à la 日本語": "Une recette naïve: crème, sucre et 東京. " + FILLER,
    }
    for title, body in published.items():
        corpus.visible[write(corpus, cast.author, title, body)] = title
    slug = write(corpus, cast.author, "Small marsupials", FILLER, tags="Numbat, Fauna")
    corpus.visible[slug] = "Small marsupials"
    slug = write(corpus, cast.other, "Bob on gardens", FILLER)
    corpus.visible[slug] = "Bob on gardens"

    hidden_body = f"{HIDDEN_WORDS}. " + FILLER
    future = local_input(app, utcnow() + timedelta(days=3))
    hidden = [
        (cast.author, "Secret quokka draft", {"status": "draft"}),
        (cast.other, "Secret wombat draft", {"status": "draft"}),
        (cast.author, "Secret heron scheduled", {"publish_at": future}),
        (cast.author, "Secret axolotl trashed", {}),
    ]
    for client, title, fields in hidden:
        corpus.hidden.add(write(corpus, client, title, hidden_body, tags="Numbat", **fields))
    assert delete_post(cast.author, corpus.slug("Secret axolotl trashed")).status_code == 303

    start = utcnow() - timedelta(days=60)
    for n in range(1, 24):
        title = f"Heron sighting {n}"
        slug = insert_post(
            app, AUTHOR.username, title, f"A grey heron stood still. {FILLER}",
            published_at=start + timedelta(hours=n),
        )  # fmt: skip
        corpus.visible[slug], corpus.by_title[title] = title, slug
    for n in range(1, 31):
        title = f"Garden diary {n}"
        slug = insert_post(
            app, OTHER.username, title, FILLER * (1 + n % 3), published_at=start - timedelta(days=n)
        )
        corpus.visible[slug], corpus.by_title[title] = title, slug


def _postgres(statement: str) -> None:
    import psycopg

    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(statement)


@contextmanager
def module_app(database: str, folder: Path, schema: str) -> Iterator[App]:
    """Give a migrated app for one module's read-only tests, on SQLite or PostgreSQL.

    On PostgreSQL it lives in a schema of its own (first on the search path), so that the
    function-scoped `any_db_app` tests, which drop and remake the public schema, cannot
    pull it from under the tests that share it; the process id in its name keeps two test
    runs on one server apart. Skips, saying why, where PG is unreachable.
    """
    schema = f"{schema}_{os.getpid()}"
    if database == "postgres":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
        _postgres(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        _postgres(f"CREATE SCHEMA {schema}")
        options = {"options": f"-csearch_path={schema}"}
        url = make_url(POSTGRES_URL).update_query_dict(options).render_as_string(False)
        app = build_app(folder, url)
    else:
        app = build_app(folder)
    try:
        yield app
    finally:
        get_database(app).dispose()
        if database == "postgres":
            _postgres(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    """The searchable blog, built once per database for the tests that only read it."""
    with module_app(request.param, tmp_path_factory.mktemp("search"), SCHEMA) as app:
        built = Corpus(app, make_cast(app))
        fill_corpus(built)
        yield built


# --- reading results ---------------------------------------------------------------------


@dataclass
class Hit:
    slug: str
    title: str
    snippet_html: str
    article: Any


def hits_of(page: TestResponse) -> list[Hit]:
    assert page.status_code == 200, page.status
    found = []
    for article in page.html.select("main article.search-hit"):
        link = article.select_one("h2 a[href]")
        snippet = article.select_one(".snippet")
        found.append(
            Hit(
                link["href"].removeprefix("/posts/"),
                link.get_text(),
                snippet.decode_contents() if snippet is not None else "",
                article,
            )
        )
    return found


def search_page(client: TestClient, q: str, page: int | None = None) -> TestResponse:
    query: dict[str, Any] = {"q": q}
    if page is not None:
        query["page"] = page
    return client.get("/search", query=query)


def titles_for(corpus: Corpus, q: str) -> list[str]:
    return [hit.title for hit in hits_of(search_page(corpus.reader, q))]


# --- the form and the results page -------------------------------------------------------


def test_site_header_holds_a_search_form_that_leads_to_results(corpus: Corpus) -> None:
    home = corpus.reader.get("/")
    form = home.html.select_one("header form[role=search]")
    assert form is not None
    assert form["action"] == "/search"
    assert form.get("method", "get").lower() == "get"
    assert form.select_one("input[name=q]") is not None

    values = home.form_values("header form[role=search]")
    values["q"] = "axolotl"
    results = corpus.reader.get(form["action"], query=values)
    assert [hit.title for hit in hits_of(results)] == ["Markup in snippets"]
    assert results.html.select_one("main form input[name=q]")["value"] == "axolotl"


def test_each_result_shows_title_link_date_reading_time_and_snippet(corpus: Corpus) -> None:
    (hit,) = hits_of(search_page(corpus.reader, "axolotl"))
    slug = corpus.slug("Markup in snippets")
    assert (hit.slug, hit.title) == (slug, "Markup in snippets")
    with get_database(corpus.app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
    stamp = hit.article.select_one(".post-meta time[datetime]")
    assert datetime.fromisoformat(stamp["datetime"]) == post.published_at.replace(microsecond=0)
    assert f"{post.reading_minutes} min read" in hit.article.select_one(".post-meta").get_text()
    assert "<mark>" in hit.snippet_html


def test_a_query_with_no_match_says_so(corpus: Corpus) -> None:
    page = search_page(corpus.reader, "xylophonist")
    assert hits_of(page) == []
    assert "Nothing matches" in page.html.select_one("main").get_text()


def test_an_empty_query_shows_the_form_and_no_results(corpus: Corpus) -> None:
    page = corpus.reader.get("/search")
    assert hits_of(page) == []
    assert page.html.select_one("main form input[name=q]") is not None


# --- ranking -----------------------------------------------------------------------------


def test_a_title_match_outranks_body_matches(corpus: Corpus) -> None:
    titles = titles_for(corpus, "quokka")
    assert titles[0] == "Quokka field notes"
    assert sorted(titles[1:]) == ["Ferry timetables", "Island wildlife"]


def test_a_title_match_outranks_a_body_that_repeats_the_word(corpus: Corpus) -> None:
    assert titles_for(corpus, "wombat") == ["Wombat burrows", "Night drive"]


def test_words_in_tags_are_found(corpus: Corpus) -> None:
    assert titles_for(corpus, "numbat") == ["Small marsupials"]


def test_words_of_any_script_are_found(corpus: Corpus) -> None:
    assert titles_for(corpus, "crème") == ["Crème brûlée à la 日本語"]
    assert titles_for(corpus, "日本語") == ["Crème brûlée à la 日本語"]


def test_every_word_of_the_query_must_match(corpus: Corpus) -> None:
    assert titles_for(corpus, "quokka jetty") == ["Island wildlife"]


# --- snippets ----------------------------------------------------------------------------


def test_snippet_marks_the_matched_words_and_escapes_everything_else(corpus: Corpus) -> None:
    (hit,) = hits_of(search_page(corpus.reader, "axolotl"))
    # Only <mark> elements in the snippet, each around a matched word; the post's own markup
    # (a <script>, a <b>) is text, never an element of the results page.
    tags = {tag.name for tag in hit.article.select_one(".snippet").find_all(True)}
    assert tags == {"mark"}
    marks = [m.get_text() for m in hit.article.select(".snippet mark")]
    assert marks and all(m.casefold() == "axolotl" for m in marks)
    assert hit.article.find("script") is None and hit.article.find("b") is None

    (result,) = corpus.reader.get("/api/search", query={"q": "axolotl"}).json["results"]
    unmarked = result["snippet"].replace("<mark>", "").replace("</mark>", "")
    assert "<" not in unmarked and ">" not in unmarked


def test_snippet_of_a_query_that_is_markup_is_escaped(corpus: Corpus) -> None:
    page = search_page(corpus.reader, "<script>alert(1)</script> axolotl")
    assert page.html.select("main script") == []
    for hit in hits_of(page):
        assert {tag.name for tag in hit.article.select_one(".snippet").find_all(True)} <= {"mark"}


# --- pages -------------------------------------------------------------------------------


def test_results_come_ten_a_page_with_links_between_pages(corpus: Corpus) -> None:
    herons = {slug for slug, title in corpus.visible.items() if title.startswith("Heron")}
    seen: list[str] = []
    page = search_page(corpus.reader, "heron")
    numbers = []
    while True:
        hits = hits_of(page)
        seen += [hit.slug for hit in hits]
        numbers.append(len(hits))
        following = page.html.select_one("main a[rel=next]")
        if following is None:
            break
        target = urlsplit(following["href"])
        assert parse_qs(target.query)["q"] == ["heron"]
        page = corpus.reader.get(following["href"])
    assert numbers == [10, 10, 3]
    assert len(seen) == len(set(seen)) and set(seen) == herons
    previous = page.html.select_one("main a[rel=prev]")
    assert parse_qs(urlsplit(previous["href"]).query) == {"q": ["heron"], "page": ["2"]}

    assert hits_of(search_page(corpus.reader, "heron", page=4)) == []


def test_api_search_pages_match_the_html_pages(corpus: Corpus) -> None:
    slugs: list[str] = []
    url: str | None = "/api/search?q=heron"
    while url:
        body = corpus.reader.get(url.removeprefix("http://localhost")).json
        slugs += [result["slug"] for result in body["results"]]
        url = body["next"]
    html = [hit.slug for n in (1, 2, 3) for hit in hits_of(search_page(corpus.reader, "heron", n))]
    assert slugs == html


# --- hostile queries ---------------------------------------------------------------------

HOSTILE_QUERIES = [
    "", " ", "   \t  ", '"', '""', '"""', "'", "''", "`",
    '"quokka', 'quokka"', '"quokka field', '"secret quokka"', "secret",
    "AND", "OR", "NOT", "NEAR", "quokka AND", "AND quokka", "quokka OR secret",
    "NOT quokka", "quokka NOT heron", "NEAR(quokka heron)", "NEAR(quokka heron, 2)",
    "quokka NEAR/2 secret", "*", "**", "quokka*", "*quokka", "secret*", "q*",
    "-", "-quokka", "--quokka", "-secret", "quokka -heron", ":", "quokka:", ":quokka",
    "title:secret", "body:quokka", "{title body}: secret", "posts_fts:secret",
    "^", "^quokka", "quokka^2", "(", ")", "()", "(quokka", "quokka)", "((((quokka", "(a OR b)",
    "+", "+quokka", "quokka + heron", "a & b | !c", "!", "<->", "quokka <-> heron",
    "quokka:*", "secret:*A", "\\", "\\\"", "%", "_", "%_%", "' OR 1=1 --",
    "quokka'); DROP TABLE posts; --", "<script>alert(1)</script>", "&amp;", "&#0;",
    "x" * 1000, "quokka " * 200, "q" * 5000, "secret " * 300,
    "\x00", "quokka\x00secret", "\x00" * 20, "\x01\x02\x03", "\x1b[31m", "\r\n", "quokka\nsecret",
    "\u200b", "\u202equokka", "\ufeff", "\ufffd", "\uffff", "𝔮𝔲𝔬𝔨𝔨𝔞", "🦘 quokka", "🦘" * 300,
    "日本語", "東京 テスト", "ﷺ", "مرحبا", "e\u0301", "Ünïcödé", "ß", "İ",
    "null", "undefined", "NaN", "0", "-1", "1e309", "true",
]  # fmt: skip


@pytest.mark.parametrize("q", HOSTILE_QUERIES, ids=lambda q: repr(q[:24]))
def test_no_query_fails_or_shows_a_hidden_post(corpus: Corpus, q: str) -> None:
    page = search_page(corpus.reader, q)
    assert page.status_code == 200
    slugs = [hit.slug for hit in hits_of(page)]
    assert not set(slugs) & corpus.hidden
    assert set(slugs) <= set(corpus.visible)

    api = corpus.reader.get("/api/search", query={"q": q})
    assert api.status_code == 200
    assert [result["slug"] for result in api.json["results"]] == slugs
    assert len(api.json["query"]) <= QUERY_MAX


@pytest.mark.parametrize(
    "query_string",
    ["q", "q=", "q=%", "q=%ZZ", "q=%f", "q=a&q=b", "q[]=x", "q=%00", "q=quokka&page=1", "q=+",
     "q=%2B%2B%2B", "q=%25", "q=%%", "q==", "q=a=b", "&&q=quokka&&", "Q=quokka"],
)  # fmt: skip
def test_odd_query_strings_are_harmless(corpus: Corpus, query_string: str) -> None:
    for path in ("/search", "/api/search"):
        response = corpus.reader.get(f"{path}?{query_string}")
        assert response.status_code == 200, (path, query_string)
        if path == "/search":
            assert not {hit.slug for hit in hits_of(response)} & corpus.hidden


NOT_UTF8 = ["q=%ff%fe", "q=%ED%A0%80", "q=%C0%AF", "q=quokka%80"]


@pytest.mark.parametrize("query_string", NOT_UTF8)
def test_a_query_string_that_is_not_utf8_is_refused_with_400(client: TestClient, query_string):
    assert client.get(f"/search?{query_string}").status_code == 400
    api = client.get(f"/api/search?{query_string}")
    assert api.status_code == 400
    assert api.json["error"]["status"] == 400


def test_the_400_page_for_a_query_string_that_is_not_utf8_keeps_the_layout(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    page = client.get("/search?q=%ff")
    assert page.status_code == 400
    assert page.html.select_one("header form[role=search]") is not None
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("page", ["0", "-1", "x", "01", "1.5", "9999999", ""])
def test_bad_page_numbers_are_404_not_errors(corpus: Corpus, page: str) -> None:
    assert corpus.reader.get("/search", query={"q": "heron", "page": page}).status_code == 404
    api = corpus.reader.get("/api/search", query={"q": "heron", "page": page})
    assert api.status_code == 404
    assert api.json["error"]["status"] == 404


_OPERATORS = st.sampled_from(
    ['"', "'", "*", "-", "+", ":", "^", "(", ")", "AND", "OR", "NOT", "NEAR", "NEAR/2", "<->",
     "!", "&", "|", "\\", "\x00", "quokka", "secret", "heron", " ", "title", "{", "}", "%"]
)  # fmt: skip
_QUERIES = st.one_of(
    st.text(max_size=40),
    st.lists(_OPERATORS, max_size=12).map("".join),
    st.lists(st.one_of(_OPERATORS, st.text(max_size=4)), max_size=10).map(" ".join),
)


@given(q=_QUERIES, number=st.integers(min_value=1, max_value=3))
@settings(max_examples=150, deadline=None)
def test_any_text_is_a_harmless_query(corpus: Corpus, q: str, number: int) -> None:
    with get_database(corpus.app).read() as db:
        results = search(db, q, number)
    slugs = {hit.post.slug for hit in results.items}
    assert slugs <= set(corpus.visible)
    assert len(results.items) <= 10
    assert all(re.fullmatch(r"[^<>]*", str(hit.snippet).replace("<mark>", "").replace(
        "</mark>", "")) for hit in results.items)  # fmt: skip


# --- the index follows the posts -----------------------------------------------------------


@pytest.fixture
def writer(any_db_app: App) -> TestClient:
    """A signed-in author (the admin) on a fresh blog, on SQLite then PostgreSQL."""
    client = any_db_app.test_client()
    assert signup_admin(client).status_code == 303
    return client


def found(app: App, q: str) -> list[str]:
    with get_database(app).read() as db:
        return [hit.post.slug for hit in search(db, q).items]


def test_an_edited_post_is_found_by_its_new_words_only(any_db_app: App, writer: TestClient):
    slug = slug_of(write_post(writer, title="Gnu migration", body="The gnu walks.", tags="Plains"))
    assert found(any_db_app, "gnu") == [slug]
    assert found(any_db_app, "plains") == [slug]

    edited = edit_post(writer, slug, title="Yak trek", body="The yak climbs.", tags="Okapi")
    assert edited.status_code == 303
    assert found(any_db_app, "gnu") == []
    assert found(any_db_app, "plains") == []
    assert found(any_db_app, "yak") == [slug]
    assert found(any_db_app, "okapi") == [slug]


def test_a_scheduled_post_is_found_once_it_is_due(any_db_app: App, writer: TestClient) -> None:
    when = utcnow() + timedelta(days=1)
    publish_at = local_input(any_db_app, when)
    slug = slug_of(write_post(writer, title="Eclipse", body="Totality.", publish_at=publish_at))
    assert found(any_db_app, "totality") == []
    assert hits_of(search_page(any_db_app.test_client(), "totality")) == []
    later = when + timedelta(minutes=5)
    set_clock(lambda: later)
    try:
        assert found(any_db_app, "totality") == [slug]
        page = search_page(any_db_app.test_client(), "totality")
        assert [hit.slug for hit in hits_of(page)] == [slug]
    finally:
        set_clock(None)


def test_a_trashed_post_is_not_found_until_restored(any_db_app: App, writer: TestClient) -> None:
    slug = slug_of(write_post(writer, title="Kiwi", body="A kiwi at night."))
    assert found(any_db_app, "kiwi") == [slug]
    assert delete_post(writer, slug).status_code == 303
    assert found(any_db_app, "kiwi") == []

    values = form_of(writer.get("/trash"), f'form[action="/posts/{slug}/restore"]')
    assert writer.post(f"/posts/{slug}/restore", data=values).status_code == 303
    assert found(any_db_app, "kiwi") == [slug]


def test_a_post_taken_back_to_draft_is_no_longer_found(any_db_app: App, writer: TestClient):
    slug = slug_of(write_post(writer, title="Tapir", body="A tapir swims."))
    assert found(any_db_app, "tapir") == [slug]
    assert edit_post(writer, slug, status="draft").status_code == 303
    assert found(any_db_app, "tapir") == []


def test_drafts_are_not_found_even_by_their_author(any_db_app: App, writer: TestClient) -> None:
    write_post(writer, title="Pangolin", body="Scales.", status="draft")
    assert hits_of(search_page(writer, "pangolin")) == []
    assert writer.get("/api/search", query={"q": "pangolin"}).json["results"] == []


def test_search_page_is_not_for_indexing(corpus: Corpus) -> None:
    page = search_page(corpus.reader, "heron")
    robots = page.html.select_one('meta[name="robots"]')
    assert robots is not None and "noindex" in robots["content"]


def test_search_for_a_purged_post_finds_nothing(any_db_app: App, writer: TestClient) -> None:
    slug = slug_of(write_post(writer, title="Dodo", body="Extinct."))
    assert delete_post(writer, slug).status_code == 303
    values = form_of(writer.get("/trash"), f'form[action="/posts/{slug}/purge"]')
    assert writer.post(f"/posts/{slug}/purge", data=values).status_code == 303
    assert found(any_db_app, "dodo") == []
    assert found(any_db_app, "extinct") == []


def test_query_is_echoed_in_the_form_cut_to_the_limit(corpus: Corpus) -> None:
    page = search_page(corpus.reader, "heron " * 400)
    value = page.html.select_one("main form input[name=q]")["value"]
    assert len(value) <= QUERY_MAX and value.startswith("heron heron")


def test_a_word_in_most_posts_ranks_its_newest_matches_and_narrow_words_rank_all(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SEARCH_WINDOW matches, ranking covers the newest ones only (SQLite's bm25
    would otherwise score every match before the first page): the oldest post, the best
    match by its title, drops out; a word in few posts still ranks them all."""
    client = app.test_client()
    assert signup_admin(client).status_code == 303
    username = ADMIN.username
    start = utcnow() - timedelta(days=200)
    insert_post(
        app, username, "Kettle", "The kettle, the kettle, the rare ladle.", published_at=start
    )
    for number in range(1, 130):
        when = start + timedelta(days=number)
        insert_post(app, username, f"Note {number}", "A kettle sings here.", published_at=when)
    with get_database(app).read() as db:
        assert search(db, "kettle").items[0].post.title == "Kettle"
        monkeypatch.setattr(search_module, "SEARCH_WINDOW", 120)
        first = search(db, "kettle").items
        assert "Kettle" not in [hit.post.title for hit in first]
        assert len(first) == 10
        assert search(db, "ladle").items[0].post.title == "Kettle"


@pytest.mark.parametrize("recent_scan", [2000, 1], ids=["recent-posts", "index-fallback"])
def test_pages_of_results_list_every_match_once_heads_first(
    any_db_app: App, monkeypatch: pytest.MonkeyPatch, recent_scan: int
) -> None:
    """Posts whose title, tags or summary match come before those that match only in the
    body, and paging through both kinds lists every match exactly once (on PostgreSQL the
    two kinds are ranked by separate queries, and a page may straddle them)."""
    monkeypatch.setattr(search_module, "RECENT_SCAN", recent_scan)
    client = any_db_app.test_client()
    assert signup_admin(client).status_code == 303
    start = utcnow() - timedelta(days=30)
    heads = [
        insert_post(
            any_db_app,
            ADMIN.username,
            f"Walrus notes {n}",
            "Plain words.",
            published_at=start + timedelta(days=n),
        )
        for n in range(3)
    ]
    bodies = [
        insert_post(
            any_db_app,
            ADMIN.username,
            f"Diary {n}",
            "Saw a walrus today.",
            published_at=start + timedelta(days=n, hours=1),
        )
        for n in range(4)
    ]
    insert_post(any_db_app, ADMIN.username, "Unrelated", "Nothing to see.", published_at=start)
    with get_database(any_db_app).read() as db:
        seen: list[str] = []
        for number in range(1, 5):
            page = search(db, "walrus", number, per_page=2)
            seen += [hit.post.slug for hit in page.items]
            if not page.has_next:
                break
    assert sorted(seen) == sorted(heads + bodies) and len(seen) == len(set(seen))
    assert set(seen[:3]) == set(heads)
    if get_database(any_db_app).engine.dialect.name == "postgresql":
        assert seen[3:] == bodies[::-1]  # body-only matches: newest first
