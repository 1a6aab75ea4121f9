"""Reading (#23): one table of contents, the end of a post, untitled notes, the archive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from blog.conftest import (
    Cast,
    Clock,
    delete_post,
    edit_post,
    field_error,
    form_of,
    get_post,
    local_input,
    set_post,
    slug_of,
    write_post,
)
from pyproject.blog.listing import Card, Link
from pyproject.blog.markup import (
    TOC_LONG_POST_WORDS,
    placeholder_links,
    render_markdown,
    toc_position,
)
from pyproject.blog.models import utcnow
from pyproject.blog.reading import group_by_month, headline, long_date
from pyproject.lib import App

SECTIONS = "\n\n".join(f"## Part {n}\n\nWords of part {n}." for n in range(1, 4))


def body_and_toc(page) -> tuple[str, list]:
    body = page.html.select_one(".post-body")
    return body, page.html.select("nav.toc, div.toc")


# --- the table of contents ---------------------------------------------------------------


def test_a_short_post_opens_with_its_first_paragraph_then_the_contents(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Short", body="The opening.\n\n" + SECTIONS))
    body, tocs = body_and_toc(cast.anonymous.get(f"/posts/{slug}"))
    assert len(tocs) == 1
    first = body.find(["p", "nav", "h2"])
    assert first.name == "p" and first.get_text() == "The opening."
    assert first.find_next_sibling(["nav", "h2"]).name == "nav"


def test_a_placed_toc_marker_is_the_only_table_of_contents(cast: Cast) -> None:
    body_md = "Intro.\n\n" + SECTIONS + "\n\n[TOC]\n"
    slug = slug_of(write_post(cast.author, title="Placed", body=body_md))
    body, tocs = body_and_toc(cast.anonymous.get(f"/posts/{slug}"))
    assert [toc.name for toc in tocs] == ["div"]
    assert body.select_one("div.toc").find_previous_sibling("h2").get_text().startswith("Part 3")


def test_the_automatic_toc_can_be_turned_off_per_post(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="No toc", body="Intro.\n\n" + SECTIONS))
    assert edit_post(cast.author, slug, toc_mode="off").status_code == 303
    assert get_post(cast.app, slug).toc_mode == "off"
    _, tocs = body_and_toc(cast.anonymous.get(f"/posts/{slug}"))
    assert tocs == []
    edit = cast.author.get(f"/posts/{slug}/edit")
    assert edit.html.select_one('input[name="toc_mode"][value="off"]').has_attr("checked")


def test_toc_position_rules() -> None:
    short = render_markdown("## Top\n\nFirst words.\n\n" + SECTIONS)
    at = toc_position(short.html, short.word_count)
    assert short.html[:at].count("</p>") == 1  # never above the first paragraph
    assert short.html[at:].startswith("<h2")
    assert toc_position(short.html, TOC_LONG_POST_WORDS) == 0  # a long post: first
    assert toc_position("<h2>Only headings</h2>", 10) == 0


# --- rendering ---------------------------------------------------------------------------


def test_table_alignment_survives_as_an_attribute_not_a_style() -> None:
    html = render_markdown("| a | b | c |\n| :-- | :-: | --: |\n| 1 | 2 | 3 |\n").html
    assert '<th align="left">a</th>' in html and '<td align="right">3</td>' in html
    assert "style=" not in html
    raw = render_markdown('<table><tr><td align="justify" style="color:red">x</td></tr></table>')
    assert "justify" not in raw.html and "style" not in raw.html


def test_code_blocks_are_labelled_with_their_language() -> None:
    html = render_markdown("```python\nprint(1)\n```\n\n```\nplain\n```\n").html
    assert 'aria-label="Code: python"' in html and 'aria-label="Code"' in html


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("[a](https://)", ["https://"]),
        ("[a](url) and [b]( http:// )", ["url", "http://"]),
        ('[a](https:// "title")', ["https://"]),
        ("[ref]: https://\n", ["https://"]),
        ("`[a](url)` and\n\n```\n[b](https://)\n```\n", []),
        ("[fine](https://example.org) [also](/posts/x)", []),
    ],
)
def test_placeholder_links_are_found_outside_code(text: str, found: list[str]) -> None:
    assert placeholder_links(text) == found


# --- untitled notes ----------------------------------------------------------------------


def test_an_untitled_note_is_named_by_its_first_words(cast: Cast) -> None:
    saved = write_post(cast.author, title="", body="Coffee *tastes* better at dawn, somehow.")
    slug = slug_of(saved)
    assert slug == "coffee-tastes-better-at-dawn-somehow"
    page = cast.anonymous.get(f"/posts/{slug}")
    assert page.html.select_one("h1.visually-hidden").get_text() == (
        "Coffee tastes better at dawn, somehow."
    )
    assert not [h for h in page.html.select("h1") if not h.get_text(strip=True)]
    home = cast.anonymous.get("/").html.select_one(".post-item-title a")
    assert home.get_text() == "Coffee tastes better at dawn, somehow."


def test_headline_and_dates() -> None:
    card = Card(1, "s", "", "one two three four five six seven eight nine", None, 1, "/", None)
    assert headline(card) == "one two three four five six seven eight…"
    assert long_date(datetime(2026, 12, 3, 23, 30, tzinfo=UTC), ZoneInfo("UTC")) == (
        "3 December 2026"
    )
    # The site's zone decides the day.
    assert long_date(datetime(2026, 12, 3, 23, 30, tzinfo=UTC), ZoneInfo("Europe/Berlin")) == (
        "4 December 2026"
    )


# --- the end of a post -------------------------------------------------------------------


def test_the_end_of_a_post_names_the_author_neighbours_and_related_posts(cast: Cast) -> None:
    slugs = []
    for n, tags in enumerate(["cats", "dogs", "cats, birds", "cats, birds", "fish"]):
        slugs.append(slug_of(write_post(cast.author, title=f"Post {n}", body="Hi.", tags=tags)))
        set_post(cast.app, slugs[-1], published_at=datetime(2026, 1, n + 1, tzinfo=UTC))
    page = cast.anonymous.get(f"/posts/{slugs[2]}")
    end = page.html.select_one("footer.post-end")
    assert end.select_one('a[rel="prev"]')["href"] == f"/posts/{slugs[1]}"
    assert end.select_one('a[rel="next"]')["href"] == f"/posts/{slugs[3]}"
    related = [a["href"] for a in end.select(".related a")]
    assert related == [f"/posts/{slugs[3]}", f"/posts/{slugs[0]}"]  # most shared tags first
    assert "Alice Author" in end.select_one(".author-card").get_text()


def test_related_posts_are_visible_posts_only_on_either_database(any_db_app: App) -> None:
    """The ranking reads an index on SQLite (INDEXED BY) and the rows on PostgreSQL: both
    leave out drafts, trashed, scheduled posts and pages, and rank by tags shared."""
    from datetime import timedelta

    from sqlalchemy import insert, select

    from pyproject.blog.db import get_database
    from pyproject.blog.models import Post, Tag, User, post_tags, utcnow

    now = utcnow()
    shapes = {  # slug: (tags, status, days ago, trashed, kind)
        "here": ("ab", "published", 1, False, "post"),
        "both": ("ab", "published", 5, False, "post"),
        "one": ("a", "published", 2, False, "post"),
        "draft": ("ab", "draft", 3, False, "post"),
        "trashed": ("ab", "published", 3, True, "post"),
        "scheduled": ("ab", "published", -3, False, "post"),
        "a-page": ("ab", "published", 3, False, "page"),
    }
    with get_database(any_db_app).write() as db:
        author = User(username="ada", email="ada@example.com", password_hash="x", role="author")
        db.add_all([author, Tag(name="A", slug="a"), Tag(name="B", slug="b")])
        db.flush()
        tag_ids = dict(db.execute(select(Tag.slug, Tag.id)).all())
        for slug, (tags, status, days, trashed, kind) in shapes.items():
            at = now - timedelta(days=days)
            post_id = db.execute(
                insert(Post).returning(Post.id),
                {
                    "author_id": author.id,
                    "title": slug.title(),
                    "slug": slug,
                    "body_md": "Words.",
                    "body_html": "<p>Words.</p>",
                    "summary": "Words.",
                    "status": status,
                    "created_at": at,
                    "updated_at": at,
                    "published_at": at,
                    "deleted_at": now if trashed else None,
                    "kind": kind,
                    "revision": 1,
                },
            ).scalar_one()
            db.execute(
                insert(post_tags), [{"post_id": post_id, "tag_id": tag_ids[t]} for t in tags]
            )
    page = any_db_app.test_client().get("/posts/here")
    assert page.status_code == 200
    related = [a["href"] for a in page.html.select(".related a")]
    assert related == ["/posts/both", "/posts/one"]  # most shared tags first


def test_the_author_sees_a_small_toolbar_with_delete_behind_a_menu(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Mine", body="Words."))
    tools = cast.author.get(f"/posts/{slug}").html.select_one(".author-tools")
    assert [a.get_text() for a in tools.select(":scope > a")] == ["Edit", "History"]
    assert tools.select_one("details form button").get_text() == "Delete"
    assert cast.anonymous.get(f"/posts/{slug}").html.select_one(".author-tools") is None


# --- the archive -------------------------------------------------------------------------


def test_the_archive_groups_by_year_and_month_with_counts(cast: Cast) -> None:
    dates = [(2025, 11, 5), (2025, 12, 1), (2025, 12, 20), (2026, 1, 2)]
    for n, (y, m, d) in enumerate(dates):
        slug = slug_of(write_post(cast.author, title=f"Dated {n}", body="Hi."))
        set_post(cast.app, slug, published_at=datetime(y, m, d, 12, tzinfo=UTC))
    page = cast.anonymous.get("/posts")
    years = [h.get_text(" ", strip=True) for h in page.html.select(".archive-year > h2")]
    assert years == ["2026 (1 post)", "2025 (3 posts)"]
    months = [h.get_text(" ", strip=True) for h in page.html.select(".archive-month h3")]
    assert months == ["January 2026 (1)", "December 2025 (2)", "November 2025 (1)"]


def test_the_archive_counts_follow_every_change_and_a_post_falling_due(
    cast: Cast, clock: Clock
) -> None:
    # The counts are kept between requests (#13): whatever changes which posts readers
    # see must show in the next page, anonymous or signed in.
    def year_totals(client) -> list[str]:
        page = client.get("/posts")
        assert page.status_code == 200
        return [h.get_text(" ", strip=True) for h in page.html.select(".archive-year > h2")]

    year = utcnow().astimezone(cast.app.extensions["timezone"]).year
    first = slug_of(write_post(cast.author, title="First", body="Hi."))
    assert year_totals(cast.anonymous) == [f"{year} (1 post)"]
    due = utcnow() + timedelta(hours=1)
    when = local_input(cast.app, due)
    write_post(cast.author, title="Later", body="Soon.", publish_at=when)
    assert year_totals(cast.anonymous) == [f"{year} (1 post)"]  # not yet
    second = slug_of(write_post(cast.author, title="Second", body="Hi."))
    assert year_totals(cast.anonymous) == year_totals(cast.author) == [f"{year} (2 posts)"]

    clock.advance(hours=2)  # nothing written: the scheduled post falls due
    due_year = due.astimezone(cast.app.extensions["timezone"]).year
    expected = (
        [f"{year} (3 posts)"] if due_year == year else [f"{due_year} (1 post)", f"{year} (2 posts)"]
    )
    assert year_totals(cast.anonymous) == year_totals(cast.author) == expected

    assert delete_post(cast.author, first).status_code == 303
    assert delete_post(cast.author, second).status_code == 303
    assert year_totals(cast.author) == year_totals(cast.anonymous) == [f"{due_year} (1 post)"]


def test_group_by_month_counts_every_page_not_only_this_one() -> None:
    author = Link("A", "a", "/authors/a")
    cards = [
        Card(1, "a", "A", "", datetime(2026, 3, 2, tzinfo=UTC), 1, "/a", author),
        Card(2, "b", "B", "", datetime(2026, 2, 1, tzinfo=UTC), 1, "/b", author),
    ]
    counts = {(2026, 3): 7, (2026, 2): 4, (2025, 12): 1}
    years = group_by_month(cards, counts, ZoneInfo("UTC"))
    assert [(y.year, y.count) for y in years] == [(2026, 11)]
    assert [(m.name, m.count, len(m.cards)) for m in years[0].months] == [
        ("March", 7, 1),
        ("February", 4, 1),
    ]


def test_a_placeholder_link_is_refused_with_the_text_kept(cast: Cast) -> None:
    response = write_post(cast.author, title="Links", body="See [the docs](https://).")
    assert response.status_code == 422
    assert "“https://”" in field_error(response, "body")
    assert response.form_values("#post-form")["body"] == "See [the docs](https://)."


# --- the author's picture ----------------------------------------------------------------


def test_an_author_picks_a_picture_of_their_own_library_only(cast: Cast) -> None:
    page = cast.author.get("/account/picture")
    assert page.status_code == 200
    assert [o["value"] for o in page.html.select("#f-picture option")] == [""]
    values = form_of(page, "form.stacked")
    refused = cast.author.post("/account/picture", data={**values, "picture": "999"})
    assert refused.status_code == 422
    assert "media library" in field_error(refused, "picture")
    removed = cast.author.post("/account/picture", data={**values, "picture": ""})
    assert removed.status_code == 303
    assert cast.anonymous.get("/account/picture").status_code in (302, 303)
