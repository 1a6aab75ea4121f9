"""Tags exist for readers only through the posts they may see, and go when no post carries them.

A tag that only drafts, scheduled or trashed posts carry has no page, feed, list entry,
API row or sitemap URL, and its name shows nowhere public; a tag no post carries at all
is deleted (on purging, on retagging, and by the periodic purge).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select

from blog.conftest import (
    Cast,
    Clock,
    delete_post,
    edit_post,
    form_of,
    set_post,
    slug_of,
    utc_ago,
    write_post,
)
from blog.test_scheduling import local_input
from pyproject.blog.db import get_database
from pyproject.blog.models import Tag
from pyproject.blog.trash import purge_expired
from pyproject.lib import App
from pyproject.lib.testing import TestClient

BASE = "http://localhost"
SURFACES = {"page", "feed", "tags index", "api tags", "sitemap"}


def where_tag_shows(client: TestClient, slug: str) -> set[str]:
    """Give the reader surfaces that show the tag (its own page and feed: 200 or 404)."""
    shown = set()
    for name, path in (("page", f"/tags/{slug}"), ("feed", f"/tags/{slug}/feed.atom")):
        status = client.get(path).status_code
        assert status in (200, 404), f"{path} answered {status}"
        if status == 200:
            shown.add(name)
    index = client.get("/tags").html.select(f'ul.tag-index a[href="/tags/{slug}"]')
    if index:
        shown.add("tags index")
    if slug in [row["slug"] for row in client.get("/api/tags").json["tags"]]:
        shown.add("api tags")
    if f"<loc>{BASE}/tags/{slug}</loc>" in client.get("/sitemap.xml").text:
        shown.add("sitemap")
    return shown


def assert_hidden(client: TestClient, slug: str) -> None:
    """The tag shows nowhere, and no address of it (another page, spelling) answers."""
    assert where_tag_shows(client, slug) == set()
    for path in (
        f"/tags/{slug}?page=2",
        f"/tags/{slug.upper()}",
        f"/tags/{slug.upper()}/feed.atom",
    ):
        response = client.get(path)
        assert response.status_code == 404, f"{path} answered {response.status_code}"
        assert response.location is None, path


def tag_slugs(app: App) -> set[str]:
    """Give the slugs of every tag row in the database."""
    with get_database(app).read() as db:
        return set(db.scalars(select(Tag.slug)))


def titles_on(client: TestClient, path: str) -> list[str]:
    page = client.get(path).html
    return [a.get_text(strip=True) for a in page.select("article.post-item h2 a")]


def purge_from_trash(client: TestClient, slug: str) -> None:
    """Press "Delete for good" on /trash."""
    action = f"/posts/{slug}/purge"
    values = form_of(client.get("/trash"), f'main form[action="{action}"]')
    assert client.post(action, data=values).status_code == 303


# --- what readers see -----------------------------------------------------------------------


def test_a_tag_only_a_draft_carries_shows_nowhere(cast: Cast) -> None:
    write_post(cast.author, title="Out", tags="public")
    draft = slug_of(write_post(cast.author, title="Not yet", status="draft", tags="Private Plans"))
    assert where_tag_shows(cast.anonymous, "public") == SURFACES
    for who in ("anonymous", "other", "author", "admin"):
        assert_hidden(cast.client(who), "private-plans")
    # The author still sees the tag on their own draft.
    assert "Private Plans" in cast.author.get(f"/posts/{draft}").text


def test_a_scheduled_posts_tag_appears_when_the_post_does(cast: Cast, clock: Clock) -> None:
    due = clock.now + timedelta(days=1)
    slug = slug_of(write_post(cast.author, title="Later", tags="Soon", publish_at=local_input(due)))
    assert_hidden(cast.anonymous, "soon")
    clock.now = due - timedelta(minutes=1)
    assert_hidden(cast.anonymous, "soon")
    clock.now = due
    assert where_tag_shows(cast.anonymous, "soon") == SURFACES
    assert titles_on(cast.anonymous, "/tags/soon") == ["Later"]
    assert cast.anonymous.get("/tags/SOON").location == "/tags/soon"
    assert slug in cast.anonymous.get("/tags/soon/feed.atom").text


def test_a_trashed_posts_only_tag_is_hidden_and_comes_back_on_restore(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Regretted", tags="Oops"))
    assert where_tag_shows(cast.anonymous, "oops") == SURFACES
    assert delete_post(cast.author, slug).status_code == 303
    assert_hidden(cast.anonymous, "oops")
    assert "oops" in tag_slugs(cast.app)  # the trash keeps the post as it was
    values = form_of(cast.author.get("/trash"), f'main form[action="/posts/{slug}/restore"]')
    assert cast.author.post(f"/posts/{slug}/restore", data=values).status_code == 303
    assert where_tag_shows(cast.anonymous, "oops") == SURFACES


def test_a_tag_shared_with_a_draft_shows_only_the_published_post(cast: Cast) -> None:
    published = slug_of(write_post(cast.author, title="Said aloud", tags="shared"))
    draft = slug_of(write_post(cast.other, title="Kept quiet", status="draft", tags="Shared"))
    reader = cast.anonymous
    assert titles_on(reader, "/tags/shared") == ["Said aloud"]
    assert [row["posts"] for row in reader.get("/api/tags").json["tags"]] == [1]
    assert cast.anonymous.get("/tags").html.select_one("ul.tag-index li .muted").text == "1 post"
    feed = reader.get("/tags/shared/feed.atom").text
    assert published in feed and draft not in feed and "Kept quiet" not in feed


def test_a_name_typed_only_in_a_draft_is_in_no_public_answer(cast: Cast) -> None:
    write_post(cast.author, title="Quarterly notes", body="Acquisition talk.", tags="notes")
    name = "Project FALCON Acquisition"
    draft = slug_of(
        write_post(
            cast.author, title="Quarterly plan", body="Acquisition.", status="draft", tags=name
        )
    )
    edit_post(cast.author, draft, body="Acquisition, revised.")  # its revisions carry it too
    paths = [
        *("/", "/posts", "/tags", "/authors/alice", "/authors/alice/feed.atom"),
        *("/feed.atom", "/feed.rss", "/sitemap.xml", "/robots.txt"),
        *("/api/posts", "/api/tags", "/search?q=acquisition", "/api/search?q=acquisition"),
        f"/posts/{draft}",
        f"/api/posts/{draft}",
    ]
    for who in ("anonymous", "other"):
        assert_hidden(cast.client(who), "project-falcon-acquisition")
        typed = cast.client(who).get("/tags/" + quote(name))  # as the author spelled it
        assert (typed.status_code, typed.location) == (404, None)
        for path in paths:
            response = cast.client(who).get(path)
            answer = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
            assert "falcon" not in answer.lower(), f"{path} shows the draft's tag to {who}"


def test_a_published_post_gives_a_draft_only_tag_its_own_spelling(cast: Cast) -> None:
    write_post(cast.author, title="Plan", body="Secret.", status="draft", tags="Project FALCON")
    slug = slug_of(write_post(cast.other, title="Birds", body="On falcons.", tags="project falcon"))
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    for path in ("/tags/project-falcon", "/tags", f"/posts/{slug}", "/api/tags"):
        text = cast.anonymous.get(path).text
        assert "project falcon" in text, path
        assert "FALCON" not in text, path
    # A spelling readers have already seen stays until no published post carries it.
    write_post(cast.author, title="More", body="More.", status="draft", tags="PROJECT falcon")
    write_post(cast.author, title="Also", body="Also.", tags="Project Falcon")
    assert "project falcon" in cast.anonymous.get("/tags/project-falcon").text


# --- which tags are kept ---------------------------------------------------------------------


def test_purging_a_post_deletes_the_tags_only_it_carried(any_db_cast: Cast) -> None:
    cast = any_db_cast
    binned = slug_of(write_post(cast.author, title="Binned", tags="lonely, common, drafted"))
    write_post(cast.author, title="Stays", tags="common")
    write_post(cast.other, title="Thinking", status="draft", tags="drafted")
    assert delete_post(cast.author, binned).status_code == 303
    assert {"lonely", "common", "drafted"} <= tag_slugs(cast.app)
    purge_from_trash(cast.author, binned)
    assert tag_slugs(cast.app) == {"common", "drafted"}
    assert_hidden(cast.anonymous, "lonely")
    assert where_tag_shows(cast.anonymous, "common") == SURFACES


def test_the_periodic_purge_deletes_the_tags_no_post_carries(any_db_cast: Cast) -> None:
    cast = any_db_cast
    old = slug_of(write_post(cast.author, title="Long gone", tags="expired, kept"))
    recent = slug_of(write_post(cast.author, title="Recently binned", tags="kept, waiting"))
    for slug in (old, recent):
        assert delete_post(cast.author, slug).status_code == 303
    set_post(cast.app, old, deleted_at=utc_ago(days=31))
    with get_database(cast.app).write() as db:  # as an earlier version left them
        db.add(Tag(name="Left behind", slug="left-behind"))
    assert purge_expired(get_database(cast.app), 30) == 1
    assert tag_slugs(cast.app) == {"kept", "waiting"}


# Retagging prunes through the editor's set_tags: these pass once it calls prune_unused_tags.


def test_removing_a_published_posts_only_tag_deletes_it(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Retagged", tags="Before"))
    assert where_tag_shows(cast.anonymous, "before") == SURFACES
    assert edit_post(cast.author, slug, tags="after").status_code == 303
    assert_hidden(cast.anonymous, "before")
    assert where_tag_shows(cast.anonymous, "after") == SURFACES
    assert tag_slugs(cast.app) == {"after"}
    assert edit_post(cast.author, slug, tags="").status_code == 303
    assert tag_slugs(cast.app) == set()


def test_removing_a_drafts_tag_deletes_it_unless_another_post_carries_it(cast: Cast) -> None:
    draft = slug_of(write_post(cast.author, title="Draft", status="draft", tags="mine, ours"))
    write_post(cast.other, title="Bob's draft", status="draft", tags="ours")
    assert edit_post(cast.author, draft, tags="").status_code == 303
    assert tag_slugs(cast.app) == {"ours"}


def test_a_drafts_tags_are_shown_to_its_author_without_links_to_missing_pages(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Plan", body="B.", status="draft", tags="Hush"))
    page = cast.author.get(f"/posts/{slug}").html
    tags = page.select_one("ul.tags")
    assert tags.get_text(strip=True) == "Hush"
    assert tags.select("a") == []
    assert cast.author.get("/tags/hush").status_code == 404
