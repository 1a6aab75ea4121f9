"""Scheduling: a published post with a future `publish_at` appears, everywhere, at that moment.

Time is moved with `set_clock`, never slept through; the clock starts at the real time
(sessions expire by the real one) and is always put back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from blog.conftest import (
    Cast,
    Clock,
    edit_post,
    field_error,
    form_of,
    make_cast,
    slug_of,
    write_post,
)
from blog.test_revisions import current_post
from pyproject.lib.testing import TestClient


def local_input(moment: datetime) -> str:
    """Give a UTC time as the datetime-local value a UTC site's editor takes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


WORD = "zanzibarish"
TAG = "futuretag"


def reader_surfaces(slug: str) -> dict[str, tuple[str, str]]:
    """Give every page readers find posts through, and what shows the post is on it."""
    return {
        "home": ("/", slug),
        "archive": ("/posts", slug),
        "tag page": (f"/tags/{TAG}", slug),
        "tags index": ("/tags", TAG),
        "author page": ("/authors/alice", slug),
        "site feed": ("/feed.atom", slug),
        "site rss": ("/feed.rss", slug),
        "tag feed": (f"/tags/{TAG}/feed.atom", slug),
        "author feed": ("/authors/alice/feed.atom", slug),
        "sitemap": ("/sitemap.xml", slug),
        "search": (f"/search?q={WORD}", slug),
        "api posts": ("/api/posts", slug),
        "api search": (f"/api/search?q={WORD}", slug),
        "api tags": ("/api/tags", TAG),
    }


# A tag no visible post carries does not exist for readers: its page and feed are 404.
TAG_OWN = {"tag page", "tag feed"}


def surfaces_showing(client: TestClient, slug: str) -> set[str]:
    """Give the names of the reader surfaces that show the post (each must answer)."""
    showing = set()
    for name, (path, marker) in reader_surfaces(slug).items():
        page = client.get(path)
        if name in TAG_OWN and page.status_code == 404:
            continue
        assert page.status_code == 200, f"{name} ({path}) answered {page.status_code}"
        if marker in page.text:
            showing.add(name)
    return showing


def scheduled_state(client: TestClient, slug: str) -> str:
    """Give the post's "State" cell on the author's dashboard."""
    for row in client.get("/drafts").html.select("main table tbody tr"):
        if row.select_one(f'a[href="/posts/{slug}"]') is not None:
            return row.select("td")[1].get_text(" ", strip=True)
    raise AssertionError(f"{slug} is not on the dashboard")


def test_a_scheduled_post_reaches_every_reader_surface_at_its_time_and_not_before(
    any_db_cast: Cast, clock: Clock
) -> None:
    cast = any_db_cast
    slug_of(write_post(cast.author, title="Already out", body="Old news.", tags="older"))
    due = clock.now + timedelta(hours=2)
    saved = write_post(
        cast.author,
        title="Tomorrow's news",
        body=f"The {WORD} announcement.",
        tags=TAG,
        status="published",
        publish_at=local_input(due),
    )
    slug = slug_of(saved)
    assert "Scheduled" in cast.author.get(f"/posts/{slug}").html.select_one("main").get_text()
    assert current_post(cast.app, slug).published_at == due

    everything = set(reader_surfaces(slug))
    for minutes_left in (120, 1):
        clock.now = due - timedelta(minutes=minutes_left)
        for visitor in ("anonymous", "other"):
            client = cast.client(visitor)
            assert surfaces_showing(client, slug) == set(), visitor
            assert client.get(f"/posts/{slug}").status_code == 404
        assert cast.anonymous.get(f"/api/posts/{slug}").status_code == 404
        # Its author and admins can look at it before readers do.
        assert cast.author.get(f"/posts/{slug}").status_code == 200
        assert cast.admin.get(f"/posts/{slug}").status_code == 200
        state = scheduled_state(cast.author, slug)
        assert state.startswith("Scheduled for")
        time = cast.author.get("/drafts").html.select_one(
            f'main tr:has(a[href="/posts/{slug}"]) time'
        )
        assert time["datetime"] == due.isoformat(timespec="seconds")

    clock.now = due
    for visitor in ("anonymous", "other"):
        client = cast.client(visitor)
        assert surfaces_showing(client, slug) == everything, visitor
        assert client.get(f"/posts/{slug}").status_code == 200
    assert cast.anonymous.get(f"/api/posts/{slug}").status_code == 200
    assert scheduled_state(cast.author, slug) == "Published"
    assert current_post(cast.app, slug).published_at == due


def test_a_draft_with_a_publish_time_stays_a_draft_when_the_time_comes(
    cast: Cast, clock: Clock
) -> None:
    slug = slug_of(
        write_post(
            cast.author,
            title="Not yet",
            body=f"{WORD} words.",
            tags=TAG,
            status="draft",
            publish_at=local_input(clock.now + timedelta(hours=1)),
        )
    )
    clock.advance(hours=3)
    assert surfaces_showing(cast.anonymous, slug) == set()
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    assert scheduled_state(cast.author, slug) == "Draft"


def test_a_publish_time_in_the_past_publishes_at_once_with_that_date(
    cast: Cast, clock: Clock
) -> None:
    earlier = clock.now - timedelta(days=3)
    slug = slug_of(
        write_post(cast.author, title="Backdated", body="Old.", publish_at=local_input(earlier))
    )
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    assert current_post(cast.app, slug).published_at == earlier


def test_rescheduling_later_hides_the_post_until_the_new_time(cast: Cast, clock: Clock) -> None:
    first = clock.now + timedelta(hours=1)
    slug = slug_of(write_post(cast.author, title="Moving", publish_at=local_input(first)))
    form = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    assert form["publish_at"] == local_input(first)
    later = clock.now + timedelta(hours=5)
    assert edit_post(cast.author, slug, publish_at=local_input(later)).status_code == 303
    clock.now = first + timedelta(minutes=1)
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    clock.now = later
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200


def test_emptying_the_publish_time_of_a_scheduled_post_publishes_it_now(
    cast: Cast, clock: Clock
) -> None:
    slug = slug_of(
        write_post(
            cast.author, title="Now please", publish_at=local_input(clock.now + timedelta(days=2))
        )
    )
    assert edit_post(cast.author, slug, publish_at="", status="published").status_code == 303
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200


@pytest.mark.parametrize(
    ("typed", "stored", "shown"),
    [
        ("2030-07-01T12:00", datetime(2030, 7, 1, 10, 0, tzinfo=UTC), "1 July 2030, 12:00"),
        ("2030-01-15T09:30", datetime(2030, 1, 15, 8, 30, tzinfo=UTC), "15 January 2030, 09:30"),
    ],
)
def test_publish_at_is_typed_in_the_sites_time_zone_and_stored_in_utc(
    make_app: Any, typed: str, stored: datetime, shown: str
) -> None:
    cast = make_cast(make_app(TIMEZONE="Europe/Paris"))
    slug = slug_of(write_post(cast.author, title="In Paris", publish_at=typed))
    assert current_post(cast.app, slug).published_at == stored
    assert form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")["publish_at"] == typed
    assert scheduled_state(cast.author, slug) == f"Scheduled for {shown}"
    time = cast.author.get("/drafts").html.select_one("main tbody time")
    assert time["datetime"] == stored.isoformat(timespec="seconds")


@pytest.mark.parametrize("typed", ["tomorrow", "2030-13-01T10:00", "2030-02-30T10:00", "10:00"])
def test_a_publish_time_that_is_not_a_time_is_a_form_error(shared_cast: Cast, typed: str) -> None:
    cast = shared_cast
    answer = write_post(cast.author, title=f"Bad time {typed}", body="Kept.", publish_at=typed)
    assert answer.status_code == 422
    assert field_error(answer, "publish_at") == "Enter a date and time like 2026-12-24T09:00."
    form = answer.form_values("#post-form")
    assert (form["title"], form["body"], form["publish_at"]) == (
        f"Bad time {typed}",
        "Kept.",
        typed,
    )
