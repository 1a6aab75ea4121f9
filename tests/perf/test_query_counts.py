"""Reader pages issue a fixed number of SQL statements, however many posts they show.

Every statement is counted: those of the app's engine (SQLAlchemy's before_cursor_execute:
the pages' queries, the session store) and those of the raw sqlite3 connection on which
ContentState asks for the validators (its trace callback). Each page is rendered with 5
and with 25 posts on it, for a signed-in author (whose pages never come from the page
cache) and for an anonymous reader's first render (the page cache emptied); the count
with 25 may not be higher than with 5. Every post on a list is by a different author and
has a tag of its own, so a relationship loaded per post shows as a growing count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from pyproject.app import create_app
from pyproject.blog import feeds, posts, search
from pyproject.blog.auth import hash_password
from pyproject.blog.db import get_database
from pyproject.blog.markup import render_markdown
from pyproject.blog.migrate import upgrade
from pyproject.blog.models import Post, PostView, Tag, User, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

PASSWORD = "reader passphrase 1"
WORD = "zebrafish"  # in every listed post, so search finds them all
LISTED = 30  # posts by 30 authors, tagged "shared": more than the largest page
OWN = 30  # older posts by the signed-in author, for the author page
PAGE_SIZES = (5, 25)

# Page kind -> (URL, what marks one post on it).
PAGES: dict[str, tuple[str, str]] = {
    "home": ("/", '<article class="post-item h-entry">'),
    "archive": ("/posts", '<article class="post-item h-entry">'),
    "tag": ("/tags/shared", '<article class="post-item h-entry">'),
    "author": ("/authors/alice", '<article class="post-item h-entry">'),
    "search": (f"/search?q={WORD}", '<article class="post-item search-hit">'),
    "feed": ("/feed.atom", "<entry>"),
}


def add_blog(app: App) -> None:
    """Give the blog 30 authors with a post each (newest) and alice with 30 older posts."""
    password_hash = hash_password(PASSWORD)  # once: Argon2 is slow on purpose
    now = utcnow()
    with get_database(app).write() as db:
        shared = Tag(name="Shared", slug="shared")
        alice = User(
            username="alice",
            email="alice@example.com",
            display_name="Alice",
            password_hash=password_hash,
            role="author",
        )
        db.add_all([shared, alice])
        for number in range(LISTED + OWN):
            listed = number < LISTED
            if listed:
                author = User(
                    username=f"writer{number}",
                    email=f"writer{number}@example.com",
                    display_name=f"Writer {number}",
                    password_hash=password_hash,
                    role="author",
                )
                tags = [shared, Tag(name=f"Topic {number}", slug=f"topic-{number}")]
                body = f"Notes on the {WORD}, part {number}.\n\nMore about it."
            else:
                author, tags, body = alice, [], f"Alice's notes, part {number}."
            rendered = render_markdown(body)
            published = now - timedelta(hours=number + 1)  # all of them this week: popular
            post = Post(
                author=author,
                title=f"Post {number}",
                slug=f"post-{number}",
                body_md=body,
                body_html=rendered.html,
                toc_html=rendered.toc_html,
                summary=rendered.summary,
                word_count=rendered.word_count,
                reading_minutes=rendered.reading_minutes,
                render_version=rendered.version,
                status="published",
                created_at=published,
                updated_at=published,
                published_at=published,
                revision=1,
                tags=tags,
                tag_names=" ".join(tag.name for tag in tags),
            )
            db.add(post)
            db.flush()
            db.add(PostView(post_id=post.id, views=number))


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder: Path = tmp_path_factory.mktemp("query-counts")
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "DEBUG": False,
            "BASE_URL": "http://localhost",
            "DATABASE_URL": f"sqlite:///{folder / 'blog.sqlite3'}",
            "INSTANCE_PATH": str(folder),
            "LOG_LEVEL": "WARNING",
        }
    )
    upgrade(get_database(app).engine)
    add_blog(app)
    yield app
    get_database(app).dispose()


@pytest.fixture(scope="module")
def author(blog: App) -> TestClient:
    """alice, signed in through the /login form."""
    client = blog.test_client()
    values = client.get("/login").form_values('form[action="/login"]')
    values.update(login="alice", password=PASSWORD)
    assert client.post("/login", data=values).status_code == 303
    return client


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    """Give the list of every SQL statement run while the block runs."""
    seen: list[str] = []

    def on_engine(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = get_database(app).engine
    state_connection = getattr(app.extensions["content_state"]._local, "connection", None)
    event.listen(engine, "before_cursor_execute", on_engine)
    if state_connection is not None:
        state_connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_engine)
        if state_connection is not None:
            state_connection.set_trace_callback(None)


@contextmanager
def posts_per_page(size: int) -> Iterator[None]:
    """Show `size` posts on every list page, search and feed (the code's own sizes aside)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(posts.paginate, "__defaults__", (size,))
        patch.setattr(posts.card_page, "__defaults__", (size,))
        # The home page reads the site settings' posts per page (#17) as it runs.
        real = posts.site_settings
        patch.setattr(posts, "site_settings", lambda: replace(real(), posts_per_page=size))
        patch.setattr(search.search, "__defaults__", (1, size))
        patch.setattr(feeds, "FEED_SIZE", size)
        yield


def count_render(app: App, client: TestClient, url: str) -> tuple[TestResponse, list[str]]:
    """Render `url` once to warm up, then again (past the page cache) counting statements."""
    assert client.get(url).status_code == 200
    app.page_cache.clear()  # an anonymous first render
    with statements(app) as seen:
        response = client.get(url)
    assert response.status_code == 200, f"{url} answered {response.status}"
    return response, seen


@pytest.mark.parametrize("visitor", ["author", "anonymous"])
@pytest.mark.parametrize("page", list(PAGES))
def test_statement_count_does_not_grow_with_posts_shown(
    blog: App, author: TestClient, visitor: str, page: str
) -> None:
    url, marker = PAGES[page]
    client = author if visitor == "author" else blog.test_client()
    counts: dict[int, list[str]] = {}
    for size in PAGE_SIZES:
        with posts_per_page(size):
            response, seen = count_render(blog, client, url)
        shown = response.text.count(marker)
        assert shown == size, f"{url} showed {shown} posts, not {size}"
        counts[size] = seen
    few, many = (counts[size] for size in PAGE_SIZES)
    assert len(many) <= len(few), (
        f"{page} ({visitor}): {len(few)} statements for {PAGE_SIZES[0]} posts, "
        f"{len(many)} for {PAGE_SIZES[1]}:\n" + "\n---\n".join(many)
    )


def test_anonymous_first_render_is_counted_from_the_validators_connection(blog: App) -> None:
    """The count above includes ContentState's own connection, not only the engine's."""
    client = blog.test_client()
    client.get("/")
    assert getattr(blog.extensions["content_state"]._local, "connection", None) is not None
    blog.page_cache.clear()
    with statements(blog) as seen:
        client.get("/")
    assert any("data_version" in statement for statement in seen), seen


# --- signed-in pages and the editor --------------------------------------------------------

# What a signed-in author's pages may cost in statements, all told: the session's row,
# the author's, the page's own queries (a post with its tags and revision state, the
# editor with its latest autosave and the author's pictures for the cover select, the
# dashboard's page of posts with their tags), and the content version's PRAGMA that tells
# whether the site settings changed on another worker (#17: one cheap statement); the
# home page's pinned posts (#17); the review state of the dashboard's posts (#20).
# The author's row comes with the session's (#13: one statement, not two).
# A post page (#13) reads the post with its author, its tags and what its later parts
# would find (in a series? Webmentions? fediverse reactions? its kept comment counts) in
# one statement, and the end of the post (previous, next and related posts, #23) in a
# second; a part known to be empty asks nothing more.
SIGNED_IN_BUDGETS: dict[str, tuple[str, int]] = {
    "post": ("/posts/post-40", 5),
    "editor": ("/posts/post-40/edit", 8),
    "drafts": ("/drafts", 7),
    "home": ("/", 7),
}

# An anonymous reader's first render of a post page: a PRAGMA for the validators (the
# page cache's and the site settings' content version: asked once a request, #13),
# BEGIN, and the post page's two statements above.
ANONYMOUS_POST_BUDGET = 4


@pytest.mark.parametrize("page", list(SIGNED_IN_BUDGETS))
def test_signed_in_pages_and_the_editor_stay_within_their_statement_budget(
    blog: App, author: TestClient, page: str
) -> None:
    url, budget = SIGNED_IN_BUDGETS[page]
    _, seen = count_render(blog, author, url)
    assert len(seen) <= budget, f"{url}: {len(seen)} statements:\n" + "\n---\n".join(seen)


def test_an_anonymous_post_page_stays_within_its_statement_budget(blog: App) -> None:
    _, seen = count_render(blog, blog.test_client(), "/posts/post-40")
    assert len(seen) <= ANONYMOUS_POST_BUDGET, "\n---\n".join(seen)


# --- statements come from the compiled cache -----------------------------------------------


@contextmanager
def compilations(app: App) -> Iterator[list[str]]:
    """Give the statements SQLAlchemy had to compile (not found in its cache) in the block."""
    compiled: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_) -> None:
        # Driver-level SQL (BEGIN) is sent as written: nothing is compiled for it.
        hit = getattr(context, "cache_hit", None)
        if context.compiled is not None and hit is not context.cache_hit.CACHE_HIT:
            compiled.append(f"{hit.name}: {statement}")

    engine = get_database(app).engine
    event.listen(engine, "after_cursor_execute", on_execute)
    try:
        yield compiled
    finally:
        event.remove(engine, "after_cursor_execute", on_execute)


@pytest.mark.parametrize("visitor", ["author", "anonymous"])
def test_reader_pages_compile_nothing_once_warm(
    blog: App, author: TestClient, visitor: str
) -> None:
    """Each statement a reader page runs is built once and found in SQLAlchemy's cache
    on every later request: a request binds values, it never compiles SQL."""
    client = author if visitor == "author" else blog.test_client()
    urls = [url for url, _ in PAGES.values()] + ["/posts/post-3", "/posts?page=2", "/tags"]
    for url in urls:  # warm: the first render of each compiles its statements
        assert client.get(url).status_code == 200, url
    for url in urls:
        blog.page_cache.clear()
        with compilations(blog) as compiled:
            assert client.get(url).status_code == 200, url
        assert compiled == [], f"{url} compiled:\n" + "\n".join(compiled)


def test_the_compilation_watch_sees_a_statement_compiled_now(blog: App) -> None:
    """The watch above is no blind spot: a statement of a new shape shows in it."""
    from sqlalchemy import select

    with compilations(blog) as compiled, get_database(blog).read() as db:
        db.execute(select(Post.id).where(Post.title == "never this").limit(3)).all()
    assert len(compiled) == 1 and "CACHE_MISS" in compiled[0], compiled
