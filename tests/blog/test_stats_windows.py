"""The past days' window sums of /stats kept in the database (#22): written by whichever
worker sums a window first and by the periodic job, read by every other worker and host
without summing again, made stale by any write to past days (add_views, the roll-up), and
exact in what /stats shows, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from blog.conftest import ADMIN, Cast, Clock, get_post, login, slug_of, write_post
from blog.test_stats import table
from pyproject.blog import jobs
from pyproject.blog import stats as stats_module
from pyproject.blog.db import get_database
from pyproject.blog.models import StatGeneration, StatWindow
from pyproject.blog.stats import (
    KEPT_WINDOWS,
    Scope,
    get_statistics,
    keep_windows,
    sums,
    tidy,
)
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
KINDS = ("days", "posts", "pages", "referrers", "searches")


def windows(app: App) -> dict[tuple[str, date, date, int], tuple[int, str]]:
    """Give the kept rows: {(kind, first, last, author): (generation, sums)}."""
    with get_statistics(app).reading() as connection:
        rows = connection.execute(select(StatWindow)).all()
    return {(r.kind, r.first_day, r.last_day, r.author_id): (r.generation, r.sums) for r in rows}


def generation(app: App) -> int:
    with get_statistics(app).reading() as connection:
        found = connection.execute(select(StatGeneration.generation)).scalar()
    return int(found or 0)


def total(page: TestResponse) -> int:
    assert page.status_code == 200
    return int(page.html.select_one(".stats-total strong").get_text())


def posts_shown(page: TestResponse) -> list[tuple[str, str]]:
    return [(row[0].split(" · ")[0], row[1]) for row in table(page, ".stats-posts")]


@pytest.fixture
def history(any_db_cast: Cast) -> dict[str, Any]:
    """Three posts with views on past days (alice's two, bob's one) and one reader today."""
    cast = any_db_cast
    slugs = [
        slug_of(write_post(cast.author, title="Alice one")),
        slug_of(write_post(cast.author, title="Alice two")),
        slug_of(write_post(cast.other, title="Bob one")),
    ]
    posts = [get_post(cast.app, slug) for slug in slugs]
    ids = [post.id for post in posts]
    authors = {post.id: post.author_id for post in posts}
    stats = get_statistics(cast.app)
    today = stats.day()
    stats.add_views(today - timedelta(days=1), {ids[0]: 5, ids[1]: 7, ids[2]: 1}, authors)
    stats.add_views(today - timedelta(days=20), {ids[0]: 10, ids[2]: 2}, authors)
    stats.add_views(today - timedelta(days=200), {ids[1]: 100}, authors)
    reader = cast.app.test_client(
        environ_overrides={"REMOTE_ADDR": "192.0.2.1", "HTTP_USER_AGENT": FIREFOX}
    )
    assert reader.get(f"/posts/{slugs[2]}").status_code == 200
    return {"cast": cast, "slugs": slugs, "ids": ids, "authors": authors, "today": today}


@pytest.fixture
def second_worker(history: dict[str, Any], tmp_path: Path) -> Iterator[tuple[App, TestClient]]:
    """Another app on the same database (another worker, or another host), admin signed in."""
    app = build_app(tmp_path, history["cast"].app.config["DATABASE_URL"])
    admin = app.test_client()
    assert login(admin, ADMIN.username, ADMIN.password).status_code == 303
    yield app, admin
    get_database(app).dispose()


def test_stats_show_exactly_the_past_days_and_today(history: dict[str, Any]) -> None:
    cast = history["cast"]
    week = cast.admin.get("/stats?days=7")
    assert total(week) == 5 + 7 + 1 + 1  # yesterday's and today's (bob's post read once)
    assert posts_shown(week) == [("Alice two", "7"), ("Alice one", "5"), ("Bob one", "2")]
    month = cast.admin.get("/stats?days=30")
    assert total(month) == 14 + 12
    assert posts_shown(month) == [("Alice one", "15"), ("Alice two", "7"), ("Bob one", "4")]
    year = cast.admin.get("/stats?days=365")
    assert total(year) == 126
    assert posts_shown(year)[0] == ("Alice two", "107")
    assert total(cast.author.get("/stats?days=30")) == 22  # alice's own posts only
    # A second render (this worker's memory in front of the rows) shows the same.
    assert posts_shown(cast.admin.get("/stats?days=30")) == posts_shown(month)


def test_the_first_render_keeps_its_windows_for_every_worker(history: dict[str, Any]) -> None:
    cast, today = history["cast"], history["today"]
    assert windows(cast.app) == {}
    cast.admin.get("/stats?days=30")
    cast.author.get("/stats?days=7")
    kept = windows(cast.app)
    first, last = today - timedelta(days=29), today - timedelta(days=1)
    alice = history["authors"][history["ids"][0]]
    assert {k for k in kept if k[3] == 0} == {(kind, first, last, 0) for kind in KINDS}
    assert {k[0] for k in kept if k[3] == alice} == {"days", "posts", "referrers"}
    assert {g for g, _ in kept.values()} == {generation(cast.app)}
    posts = json.loads(kept[("posts", first, last, 0)][1])
    ids = history["ids"]
    assert posts["top"] == [[ids[0], 15], [ids[1], 7], [ids[2], 3]]  # past days only
    assert posts["size"] == 3


def test_a_second_worker_reads_the_kept_sums_without_summing(
    history: dict[str, Any], second_worker: tuple[App, TestClient]
) -> None:
    cast, today = history["cast"], history["today"]
    app, admin = second_worker
    assert posts_shown(cast.admin.get("/stats?days=30"))[0] == ("Alice one", "15")
    key = ("posts", today - timedelta(days=29), today - timedelta(days=1), 0)
    kept = windows(cast.app)[key]
    # Proof that the other worker reads the row rather than summing the buckets: a row
    # that says something else (as no sum of the buckets could) is what it shows.
    told = json.loads(kept[1])
    told["top"][0][1] = 1000
    told["all"] = [[k, 1000 if k == told["top"][0][0] else v] for k, v in told["all"]]
    with get_statistics(cast.app).engine().begin() as connection:
        connection.execute(
            update(StatWindow)
            .where(
                StatWindow.kind == key[0],
                StatWindow.first_day == key[1],
                StatWindow.last_day == key[2],
                StatWindow.author_id == 0,
            )
            .values(sums=json.dumps(told))
        )
    assert posts_shown(admin.get("/stats?days=30"))[0] == ("Alice one", "1000")
    assert windows(app)[key][0] == kept[0]  # nothing written again
    # A write to a past day (through the first worker) makes every kept window stale for
    # every worker, the second's memory included: both show the buckets' sums again.
    before = generation(cast.app)
    get_statistics(cast.app).add_views(today - timedelta(days=2), {history["ids"][2]: 20})
    assert generation(app) == before + 1
    for client in (admin, cast.admin):
        assert posts_shown(client.get("/stats?days=30")) == [
            ("Bob one", "24"),
            ("Alice one", "15"),
            ("Alice two", "7"),
        ]
    assert windows(app)[key][0] == before + 1  # written anew, at the new generation


def test_the_job_keeps_the_sites_windows_so_the_first_render_sums_nothing(
    history: dict[str, Any], second_worker: tuple[App, TestClient]
) -> None:
    cast, today = history["cast"], history["today"]
    app, admin = second_worker
    assert keep_windows(cast.app) == len(KEPT_WINDOWS) * len(KINDS)
    kept = windows(cast.app)
    assert {(k[0], (k[2] - k[1]).days + 2, k[3]) for k in kept} == {  # and today
        (kind, days, 0) for kind in KINDS for days in KEPT_WINDOWS
    }
    assert {k[2] for k in kept} == {today - timedelta(days=1)}
    assert keep_windows(cast.app) == 0  # all kept: nothing summed again
    assert keep_windows(app) == 0  # nor by another worker (the job on another host)
    for days in (7, 30, 365):
        page = admin.get(f"/stats?days={days}")
        assert page.status_code == 200
    assert windows(app) == kept  # the other worker's renders wrote nothing: all were kept
    assert total(admin.get("/stats?days=365")) == 126
    # The worker's scheduler starts it every minute: within a minute of the site's midnight.
    job = jobs.JOBS["pyproject.blog.stats.keep_statistics_windows"]
    minutes = [datetime(2026, 12, 5, hour, minute) for hour in range(24) for minute in range(60)]
    assert all(job.periodic(moment) for moment in minutes)


def test_the_roll_up_makes_kept_windows_stale_and_the_job_drops_old_ones(
    clock: Clock, history: dict[str, Any]
) -> None:
    cast, today = history["cast"], history["today"]
    stats = get_statistics(cast.app)
    tidy(cast.app)
    kept = windows(cast.app)
    assert len(kept) == len(KEPT_WINDOWS) * len(KINDS)
    start = generation(cast.app)
    # Nothing to roll up: the hourly job leaves the kept windows as they are.
    done = tidy(cast.app)
    assert (done["views"], done["windows_dropped"], done["windows_made"]) == (0, 0, 0)
    assert generation(cast.app) == start and windows(cast.app) == kept
    # Rows older than the daily years roll up into a month: a change to past days.
    old = date(today.year - 3, 3, 1)
    with stats.raw.transaction():  # written as an import from long ago would be
        stats.raw.run(
            stats_module._VIEW,
            {
                "day": stats._day_param(old),
                "page": f"post:{history['ids'][0]}",
                "post_id": history["ids"][0],
                "author_id": None,
                "views": 4,
            },
        )
    done = tidy(cast.app)
    assert done["views"] == 1
    assert generation(cast.app) == start + 1
    assert done["windows_dropped"] == len(kept)  # every one of the older generation
    assert {g for g, _ in windows(cast.app).values()} == {start + 1}
    # A day later, yesterday's windows are no page's any more: dropped; today's are made.
    clock.advance(days=1)
    done = tidy(cast.app)
    assert done["windows_dropped"] == len(kept)
    assert done["windows_made"] == len(kept)
    assert {k[2] for k in windows(cast.app)} == {today}
    assert total(cast.admin.get("/stats?days=30")) == 26  # yesterday's view, read from a row


def test_leaders_stay_exact_when_only_the_largest_sums_are_kept(
    monkeypatch: pytest.MonkeyPatch, any_db_cast: Cast
) -> None:
    """With more keys than KEEP_ALL, a kept window holds the PAST_TOP largest only; a post
    read today that is not among them still counts its past days, and the ranking is the
    one the buckets give."""
    cast = any_db_cast
    monkeypatch.setattr(stats_module, "PAST_TOP", 2)
    monkeypatch.setattr(stats_module, "KEEP_ALL", 3)
    stats = get_statistics(cast.app)
    today = stats.day()
    slug = slug_of(write_post(cast.author, title="Late riser"))
    riser = get_post(cast.app, slug).id
    past = {1001: 50, 1002: 40, 1003: 30, 1004: 20, riser: 25}
    stats.add_views(today - timedelta(days=3), past)
    for number in range(6):  # six readers today: 31 in all, above 1002 and 1003
        reader = cast.app.test_client(
            environ_overrides={"REMOTE_ADDR": f"192.0.2.{number}", "HTTP_USER_AGENT": FIREFOX}
        )
        assert reader.get(f"/posts/{slug}").status_code == 200
    first = today - timedelta(days=6)
    page = cast.admin.get("/stats?days=7")
    assert total(page) == 165 + 6
    kept = next(
        json.loads(sums_)
        for (kind, _f, _l, author), (_g, sums_) in windows(cast.app).items()
        if kind == "posts" and author == 0
    )
    assert kept == {"top": [[1001, 50], [1002, 40]], "all": None, "size": 5}
    shown = [row[1] for row in table(page, ".stats-posts")]
    assert shown == ["50", "40", "31", "30", "20"][: len(shown)]
    assert "31" in shown  # the riser: 25 past views found beside the kept top, 6 today
    with stats.reading() as connection:
        every = sums(connection, "posts", first, today, Scope(None))
    assert sorted(every.values(), reverse=True) == [50, 40, 31, 30, 20]


def test_leaders_fall_back_to_every_sum_when_the_kept_top_cannot_decide(
    monkeypatch: pytest.MonkeyPatch, any_db_cast: Cast
) -> None:
    """All past sums tied: the kept top cannot tell whether an unkept key belongs in the
    answer, so leaders() reads them all, and the ties are broken by key as sums() gives."""
    cast = any_db_cast
    monkeypatch.setattr(stats_module, "PAST_TOP", 2)
    monkeypatch.setattr(stats_module, "KEEP_ALL", 3)
    stats = get_statistics(cast.app)
    today = stats.day()
    stats.add_views(today - timedelta(days=1), {2004: 9, 2003: 9, 2002: 9, 2001: 9})
    page = cast.admin.get("/stats?days=7")
    assert total(page) == 36
    kept = next(
        json.loads(sums_)
        for (kind, _f, _l, author), (_g, sums_) in windows(cast.app).items()
        if kind == "posts" and author == 0
    )
    assert kept["top"] == [[2001, 9], [2002, 9]] and kept["all"] is None
    # All four shown (only two kept): the other two came from summing every key.
    assert [row[1] for row in table(page, ".stats-posts")] == ["9", "9", "9", "9"]


@pytest.mark.parametrize(("seed", "past_days"), [(1, (1, 3)), (2, (1, 3)), (3, (1, 3)), (4, ())])
def test_leaders_from_the_largest_of_each_side_are_the_exact_ranking(
    monkeypatch: pytest.MonkeyPatch, any_db_cast: Cast, seed: int, past_days: tuple[int, ...]
) -> None:
    """leaders() first ranks from today's LIVE_TOP largest (asked of SQL) and the kept
    past top, and uses them only when the bound proves the answer (#13): whatever the
    numbers, the ranking is the one every sum gives, ties by key."""
    import random

    cast = any_db_cast
    monkeypatch.setattr(stats_module, "LIVE_TOP", 5)
    monkeypatch.setattr(stats_module, "PAST_TOP", 4)
    monkeypatch.setattr(stats_module, "KEEP_ALL", 6)
    numbers = random.Random(seed)
    stats = get_statistics(cast.app)
    today = stats.day()
    keys = range(3001, 3041)
    # Skewed: a few keys read a lot, most a little, some ties; or only today's (no past).
    for days_ago in past_days:
        past = {
            key: numbers.choice([1, 1, 2, 3, 5, 8, 40]) for key in keys if numbers.random() < 0.7
        }
        stats.add_views(today - timedelta(days=days_ago), past)
    stats.add_views(
        today, {key: numbers.choice([1, 1, 2, 6, 30]) for key in keys if numbers.random() < 0.6}
    )
    first = today - timedelta(days=6)
    from pyproject.lib.app import _current_app

    bounded = stats_module._bounded_leaders
    proved: list[int] = []

    def counted(*args: Any) -> Any:
        top = bounded(*args)
        if top is not None:
            proved.append(len(top))
        return top

    monkeypatch.setattr(stats_module, "_bounded_leaders", counted)
    reset = _current_app.set(cast.app)  # (leaders() finds the statistics by the app)
    try:
        with stats.reading() as connection:
            every = sums(connection, "posts", first, today, Scope(None))
            wanted = stats_module.ranked(every, 10)
            for limit in (1, 2, 3, 10):
                got = stats_module.leaders(connection, "posts", first, today, Scope(None), limit)
                assert got == wanted[:limit], (limit, got, wanted[:limit])
    finally:
        _current_app.reset(reset)
    assert proved  # the largest of each side decided at least the first places


def test_two_workers_keeping_one_window_at_once_is_harmless(
    history: dict[str, Any], second_worker: tuple[App, TestClient]
) -> None:
    """Both write their row; the same generation's second write changes nothing, and a
    worker that summed before a change (an older generation) never replaces the newer."""
    cast, today = history["cast"], history["today"]
    app, admin = second_worker
    first, last = today - timedelta(days=29), today - timedelta(days=1)
    late = get_statistics(app)
    older = generation(cast.app)
    with late.reading() as connection:  # the second worker sums, and is slow to write
        summed = stats_module.Kept.of("posts", sums(connection, "posts", first, last, Scope(None)))
    get_statistics(cast.app).add_views(today - timedelta(days=3), {history["ids"][1]: 50})
    assert posts_shown(cast.admin.get("/stats?days=30"))[0] == ("Alice two", "57")
    newer = windows(cast.app)[("posts", first, last, 0)]
    assert newer[0] == older + 1
    late._keep((older, "posts", first, last, 0, 1), summed)  # its write lands only now
    assert windows(cast.app)[("posts", first, last, 0)] == newer
    late._keep((older + 1, "posts", first, last, 0, 1), summed)  # same generation again
    assert windows(cast.app)[("posts", first, last, 0)] == newer
    assert posts_shown(admin.get("/stats?days=30"))[0] == ("Alice two", "57")
