"""First-party statistics (#22): who is counted, day buckets in the site's zone, the salt
thrown away at midnight, /stats and /posts/<slug>/stats against a known run of requests,
access, CSV round trips, the roll-up into months, and exact counts under concurrency.
"""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from blog.conftest import (
    Cast,
    Clock,
    get_post,
    make_cast,
    slug_of,
    views_of,
    write_post,
)
from pyproject.blog.models import (
    StatFeedReader,
    StatRecentView,
    StatReferrer,
    StatSalt,
    StatSearch,
    StatView,
    set_clock,
)
from pyproject.blog.stats import (
    SEARCH_ENGINES_GROUP,
    feed_reader,
    get_statistics,
    is_browser,
    referrer_domain,
    search_term,
    tidy,
)
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


# --- who is a reader ---------------------------------------------------------------------


@pytest.mark.parametrize("agent", [FIREFOX, CHROME, SAFARI])
def test_browsers_are_readers(agent: str) -> None:
    assert is_browser(agent)


@pytest.mark.parametrize(
    "agent",
    [
        "",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0)",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; )",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.32",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (compatible; NetNewsWire/6.1 feed reader)",
        "Wget/1.21",
    ],
)
def test_robots_feed_readers_and_tools_are_not(agent: str) -> None:
    assert not is_browser(agent)


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("Mozilla/5.0 (compatible; GoogleBOT/2.1)", False),
        ("Mozilla/5.0 CURL/8", False),
        ("Mozilla/5.0 (X11) HeadLessChrome/131", False),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/131 Mobile Safari/537.36", True),
        ("Mozilla/5.0 (X11; Linux) Firefox/133.0 Привет", True),  # not ASCII: the other path
        ("Mozilla/5.0 (X11; Linux) Firefox/133.0 SPİDER", False),  # İ: i, ignoring case
        ("Mozilla/5.0 (compatible; Ünïcode Crawler/1.0)", False),
        ("Mozilla/5.0 (compatible; \u212aelvin) Slurp", False),
    ],
)
def test_case_is_ignored_in_robots_names_as_before(agent: str, expected: bool) -> None:
    """The counting path lowercases an ASCII User-Agent instead of matching without case:
    the answer is the one a case-insensitive match gives, for every User-Agent."""
    from pyproject.blog.stats import _BROWSER, _NOT_A_READER

    assert is_browser(agent) is expected
    assert is_browser(agent) is (bool(_BROWSER.match(agent)) and not _NOT_A_READER.search(agent))


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; )", ("Feedly", 57)),
        (
            "Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 3 subscribers; )",
            ("Inoreader", 3),
        ),
        (
            "NewsBlur Feed Fetcher - 12 subscribers - http://www.newsblur.com/site/1/x",
            ("NewsBlur Feed Fetcher", 12),
        ),
        ("Feedbin feed-id:1373711 - 9 subscribers", ("Feedbin", 9)),
        ("The Old Reader - 1 reader", ("The Old Reader", 1)),
        ("Feedly/1.0", None),
        (FIREFOX, None),
    ],
)
def test_feed_readers_announce_their_subscribers(agent: str, expected: Any) -> None:
    assert feed_reader(agent) == expected


OURS = {"blog.example", "localhost"}


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://news.ycombinator.com/item?id=1", "news.ycombinator.com"),
        ("https://www.Example.org/a/b?c=d#e", "example.org"),
        ("https://www.google.com/", SEARCH_ENGINES_GROUP),
        ("https://www.google.co.uk/search?q=x", SEARCH_ENGINES_GROUP),
        ("https://duckduckgo.com/", SEARCH_ENGINES_GROUP),
        ("https://www.bing.com/search?q=secret+name", SEARCH_ENGINES_GROUP),
        ("https://blog.example/posts/x", None),  # our own site
        ("http://www.blog.example/", None),
        ("http://localhost:8000/", None),
        ("", None),
        ("javascript:alert(1)", None),
        ("https://", None),
        ("https://exa mple.org/", None),
        ("https://[::1]:80/", None),
        ("https://<script>.org/", None),
        ("ftp://files.example.org/", None),
        ("https://" + "a" * 300 + ".org/", None),
    ],
)
def test_referrers_are_domains_with_search_engines_grouped(referrer: str, expected: Any) -> None:
    assert referrer_domain(referrer, OURS) == expected


def test_search_terms_are_lowercased_and_tidied() -> None:
    assert search_term("  Python   ASYNC\t") == "python async"
    assert search_term("x\x00y") == "x y"
    assert len(search_term("ü" * 500)) == 100


# --- counting rules ------------------------------------------------------------------------


def reader(app: App, agent: str = FIREFOX, address: str = "198.51.100.7") -> TestClient:
    return app.test_client(environ_overrides={"REMOTE_ADDR": address, "HTTP_USER_AGENT": agent})


def day_views(app: App, page: str | None = None) -> dict[str, int]:
    """Give {page: views} summed over every day (or one page's sum under its name)."""
    with get_statistics(app).reading() as connection:
        rows = connection.execute(
            select(StatView.page, func.sum(StatView.views)).group_by(StatView.page)
        ).all()
    counts = {str(p): int(v) for p, v in rows}
    return {page: counts.get(page, 0)} if page is not None else counts


def rows_of(app: App, model: Any) -> list[Any]:
    with get_statistics(app).reading() as connection:
        return list(connection.execute(select(model.__table__)).all())


@pytest.fixture
def site(cast: Cast) -> tuple[Cast, str, int]:
    slug = slug_of(write_post(cast.author, title="Counted", tags="python"))
    return cast, slug, get_post(cast.app, slug).id


def test_a_browsers_view_is_counted_on_its_day_and_a_repeat_within_30_minutes_is_not(
    clock: Clock, site: tuple[Cast, str, int]
) -> None:
    cast, slug, post_id = site
    page = f"post:{post_id}"
    stats = get_statistics(cast.app)
    if stats.day(clock.now + timedelta(minutes=32)) != stats.day(clock.now):
        clock.advance(minutes=35)  # run near midnight: the half hour would span two days
    browser = reader(cast.app)
    assert browser.get(f"/posts/{slug}").status_code == 200
    browser.get(f"/posts/{slug}")  # served by the page cache: still one reader
    clock.advance(minutes=29)
    browser.get(f"/posts/{slug}")
    assert day_views(cast.app, page) == {page: 1}
    assert views_of(cast.app, slug) == 3  # the all-time count takes every GET, as before
    clock.advance(minutes=2)
    browser.get(f"/posts/{slug}")
    assert day_views(cast.app, page) == {page: 2}
    # Another reader on the same address (another browser) is another reader.
    reader(cast.app, CHROME).get(f"/posts/{slug}")
    assert day_views(cast.app, page) == {page: 3}


def test_robots_feed_readers_and_head_are_not_counted(site: tuple[Cast, str, int]) -> None:
    cast, slug, _post_id = site
    for agent in ("", "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5"):
        assert reader(cast.app, agent).get(f"/posts/{slug}").status_code == 200
    assert reader(cast.app).head(f"/posts/{slug}").status_code == 200
    assert day_views(cast.app) == {}
    assert views_of(cast.app, slug) == 3  # HEAD never counted; robots' GETs always were


def test_the_author_reading_her_own_post_is_not_counted(site: tuple[Cast, str, int]) -> None:
    cast, slug, _ = site
    cast.author.get(f"/posts/{slug}", headers={"User-Agent": FIREFOX})
    assert day_views(cast.app) == {}
    cast.other.get(f"/posts/{slug}", headers={"User-Agent": FIREFOX})
    assert sum(day_views(cast.app).values()) == 1


def test_home_tag_pages_and_search_are_counted(site: tuple[Cast, str, int]) -> None:
    cast, _slug, _ = site
    browser = reader(cast.app)
    for path in ("/", "/?page=1", "/tags/python", "/search?q=Counted", "/search?q=nothing+here"):
        assert browser.get(path).status_code == 200, path
    assert day_views(cast.app) == {"home": 1, "tag:python": 1, "search": 2}
    reader(cast.app, CHROME).get("/search?q=COUNTED")
    searches = {row.term: (row.searches, row.found) for row in rows_of(cast.app, StatSearch)}
    assert searches == {"counted": (2, 1), "nothing here": (1, 0)}


def test_referrers_keep_domains_only_and_never_our_own(site: tuple[Cast, str, int]) -> None:
    cast, slug, post_id = site
    for number, referrer in enumerate(
        [
            "https://news.example.org/item?id=12&user=someone",
            "https://www.google.com/search?q=my+name",
            "http://localhost/",  # our own pages
            "https://news.example.org/other",
        ]
    ):
        reader(cast.app, address=f"203.0.113.{number}").get(
            f"/posts/{slug}", headers={"Referer": referrer}
        )
    kept = sorted((r.referrer, r.views, r.post_id) for r in rows_of(cast.app, StatReferrer))
    assert kept == [("news.example.org", 2, post_id), (SEARCH_ENGINES_GROUP, 1, post_id)]
    assert day_views(cast.app, f"post:{post_id}")[f"post:{post_id}"] == 4


def test_global_privacy_control_counts_the_view_but_no_referrer_or_search(
    site: tuple[Cast, str, int],
) -> None:
    cast, slug, _ = site
    private = {"Sec-GPC": "1", "Referer": "https://elsewhere.example.org/"}
    reader(cast.app).get(f"/posts/{slug}", headers=private)
    reader(cast.app).get("/search?q=counted", headers=private)
    reader(cast.app, CHROME).get("/search?q=counted", headers=private)
    assert sum(day_views(cast.app).values()) == 3
    assert rows_of(cast.app, StatReferrer) == []
    assert rows_of(cast.app, StatSearch) == []


def test_nothing_identifying_a_reader_is_stored(site: tuple[Cast, str, int]) -> None:
    cast, slug, _ = site
    address, agent = "198.51.100.77", FIREFOX + " Unique/42"
    reader(cast.app, agent, address).get(
        f"/posts/{slug}", headers={"Referer": "https://a.example/"}
    )
    stats = get_statistics(cast.app)
    dump = "\n".join(
        repr(row)
        for model in (StatView, StatReferrer, StatSearch, StatFeedReader, StatRecentView, StatSalt)
        for row in rows_of(cast.app, model)
    )
    assert address not in dump and "Unique/42" not in dump
    assert "198.51.100" not in dump
    assert len(rows_of(cast.app, StatRecentView)) == 1  # a hash, for the repeat rule only
    assert stats.enabled


def test_the_salt_is_thrown_away_at_midnight_in_the_sites_zone(tmp_path: Any) -> None:
    app = build_app(tmp_path, TIMEZONE="Pacific/Auckland")  # UTC+13 in December
    cast = make_cast(app)
    try:
        slug = slug_of(write_post(cast.author, title="Late reading"))
        post_id = get_post(app, slug).id
        zone = ZoneInfo("Pacific/Auckland")
        # The next 23:50 there (after the post was written: the clock only moves on).
        there = datetime.now(zone)
        evening = datetime.combine(there.date(), time(23, 50), zone)
        if evening <= there:
            evening += timedelta(days=1)
        day = evening.date()
        clock = Clock(evening.astimezone(UTC))
        set_clock(clock)
        browser = reader(app)
        browser.get(f"/posts/{slug}")
        (first_salt,) = rows_of(app, StatSalt)
        assert first_salt.day == day
        clock.advance(minutes=15)  # 00:05 there (11:05 UTC): a new day in the site's zone
        browser.get(f"/posts/{slug}")
        (second_salt,) = rows_of(app, StatSalt)  # yesterday's is gone
        assert second_salt.day == day + timedelta(days=1)
        assert second_salt.salt != first_salt.salt
        hashes = rows_of(app, StatRecentView)
        assert len(hashes) == 1  # only the one made with today's salt
        days = {row.day: row.views for row in rows_of(app, StatView)}
        assert days == {day: 1, day + timedelta(days=1): 1}
        # Midnight UTC is no midnight there: a repeat across it is still a repeat.
        clock.now = datetime.combine(day + timedelta(days=1), time(23, 50), UTC)
        browser.get(f"/posts/{slug}")
        clock.advance(minutes=15)
        browser.get(f"/posts/{slug}")
        days = {row.day: row.views for row in rows_of(app, StatView)}
        assert days[day + timedelta(days=2)] == 1
        assert post_id
    finally:
        set_clock(None)
        from pyproject.blog.db import get_database

        get_database(app).dispose()


def test_feed_readers_subscribers_are_kept_latest_per_day(site: tuple[Cast, str, int]) -> None:
    cast, _, _ = site
    feedly = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; {} subscribers; )"
    client = cast.app.test_client()
    for count in (12, 15):
        answer = client.get("/feed.atom", headers={"User-Agent": feedly.format(count)})
        assert answer.status_code == 200
    etag = answer.headers["ETag"]
    revalidated = client.get(
        "/feed.atom", headers={"User-Agent": feedly.format(16), "If-None-Match": etag}
    )
    assert revalidated.status_code == 304  # a revalidation reports too
    client.get("/tags/python/feed.atom", headers={"User-Agent": feedly.format(4)})
    client.get("/no/such/feed.atom", headers={"User-Agent": feedly.format(999)})
    client.get("/feed.rss", headers={"User-Agent": "NewsBlur Feed Fetcher - 7 subscribers - x"})
    kept = sorted((r.reader, r.feed, r.subscribers) for r in rows_of(cast.app, StatFeedReader))
    assert kept == [
        ("Feedly", "/feed.atom", 16),
        ("Feedly", "/tags/python/feed.atom", 4),
        ("NewsBlur Feed Fetcher", "/feed.rss", 7),
    ]
    assert day_views(cast.app) == {}  # fetching feeds is no view


# --- /stats against a known run of requests -------------------------------------------------


def table(page: TestResponse, selector: str) -> list[list[str]]:
    found = page.html.select_one(selector)
    assert found is not None, selector
    return [
        [cell.get_text(" ", strip=True) for cell in row.select("td")]
        for row in found.select("tbody tr")
    ]


def csv_rows(answer: TestResponse) -> list[list[str]]:
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert "no-store" in answer.headers["Cache-Control"]
    return list(csv.reader(io.StringIO(answer.text)))


@pytest.fixture
def known(cast: Cast) -> dict[str, Any]:
    """alice's two posts and bob's one, read by a known set of readers."""
    a1 = slug_of(write_post(cast.author, title="Alice one", tags="python"))
    a2 = slug_of(write_post(cast.author, title="Alice two"))
    b1 = slug_of(write_post(cast.other, title="Bob one"))
    plan = [  # (address, agent, path, referrer)
        *[(f"192.0.2.{n}", FIREFOX, f"/posts/{a1}", "") for n in range(5)],
        *[(f"192.0.2.{n}", FIREFOX, f"/posts/{a2}", "https://lobste.rs/s/x") for n in range(3)],
        ("192.0.2.9", CHROME, f"/posts/{a2}", "https://www.google.de/"),
        *[(f"192.0.2.{n}", SAFARI, f"/posts/{b1}", "https://bob.example/") for n in range(2)],
        ("192.0.2.1", FIREFOX, f"/posts/{a1}", ""),  # a repeat
        ("192.0.2.1", "Googlebot/2.1", f"/posts/{a1}", ""),  # a robot
        ("192.0.2.1", FIREFOX, "/", ""),
        ("192.0.2.2", FIREFOX, "/tags/python", ""),
        ("192.0.2.1", FIREFOX, "/search?q=Alice", ""),
        ("192.0.2.2", FIREFOX, "/search?q=alice", ""),
        ("192.0.2.3", FIREFOX, "/search?q=unicorns", ""),
        ("192.0.2.4", FIREFOX, "/search?q=unicorns", ""),
        ("192.0.2.5", FIREFOX, "/search?q=once+only", ""),
        ("192.0.2.6", FIREFOX, "/search?q=%3DHYPERLINK(1)", ""),
        ("192.0.2.7", CHROME, "/search?q=%3DHYPERLINK(1)", ""),
    ]
    for address, agent, path, referrer in plan:
        headers = {"Referer": referrer} if referrer else {}
        assert reader(cast.app, agent, address).get(path, headers=headers).status_code == 200
    cast.app.test_client().get(
        "/feed.atom", headers={"User-Agent": "Feedly/1.0 (+http://feedly.com; 21 subscribers; )"}
    )
    return {"a1": a1, "a2": a2, "b1": b1}


def test_admins_stats_match_the_requests(cast: Cast, known: dict[str, Any]) -> None:
    page = cast.admin.get("/stats?days=7")
    assert page.status_code == 200
    # 5 + 4 + 2 post views, home, tag, 7 searches (the repeat and the robot not counted).
    assert page.html.select_one(".stats-total strong").get_text() == "20"
    days = table(page, ".stats-days")
    assert len(days) == 7 and days[-1][1] == "20" and {d[1] for d in days[:-1]} == {"0"}
    posts = table(page, ".stats-posts")
    assert [row[:2] for row in posts] == [
        ["Alice one · details of Alice one", "5"],
        ["Alice two · details of Alice two", "4"],
        ["Bob one · details of Bob one", "2"],
    ]
    assert posts[0][2] == "Views per day of “Alice one”: 5 in all, at most 5 a day"
    assert len(page.html.select(".stats-posts td.trend svg polyline")) == 3
    assert table(page, ".stats-pages") == [["search", "7"], ["home", "1"], ["tag: python", "1"]]
    assert table(page, ".stats-referrers") == [
        ["lobste.rs", "3"],
        ["bob.example", "2"],
        [SEARCH_ENGINES_GROUP, "1"],
    ]
    assert table(page, ".stats-searches") == [
        ["=hyperlink(1)", "2", "Nothing found"],
        ["alice", "2", "2"],
        ["unicorns", "2", "Nothing found"],
    ]  # "once only" was searched once: not kept
    assert table(page, ".stats-subscribers") == [["Feedly", "21"]]
    chart = page.html.select_one("figure svg")
    assert chart["role"] == "img" and chart.title.get_text() == "Views per day, the last 7 days"
    assert "20 views" in page.html.select_one("figure figcaption").get_text()


def test_an_author_sees_her_own_posts_only(cast: Cast, known: dict[str, Any]) -> None:
    page = cast.author.get("/stats?days=30")
    assert page.status_code == 200
    assert page.html.select_one(".stats-total strong").get_text() == "9"
    assert [row[0] for row in table(page, ".stats-posts")] == [
        "Alice one · details of Alice one",
        "Alice two · details of Alice two",
    ]
    assert table(page, ".stats-referrers") == [["lobste.rs", "3"], [SEARCH_ENGINES_GROUP, "1"]]
    for site_wide in (".stats-pages", ".stats-searches", ".stats-subscribers"):
        assert page.html.select_one(site_wide) is None
    assert cast.author.get("/stats/searches.csv").status_code == 404


def test_one_posts_stats_since_publication(cast: Cast, known: dict[str, Any]) -> None:
    page = cast.author.get(f"/posts/{known['a2']}/stats")
    assert page.status_code == 200
    assert page.html.select_one(".stats-total strong").get_text() == "4"
    assert table(page, ".stats-days") == [[page.html.select(".stats-days time")[0].get_text(), "4"]]
    assert table(page, ".stats-referrers") == [["lobste.rs", "3"], [SEARCH_ENGINES_GROUP, "1"]]
    assert cast.admin.get(f"/posts/{known['a2']}/stats").status_code == 200


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("anonymous", "/stats", 302),
        ("anonymous", "/stats/days.csv", 302),
        ("anonymous", "/posts/{a1}/stats", 302),
        ("other", "/posts/{a1}/stats", 403),
        ("other", "/posts/{a1}/stats/days.csv", 403),
        ("author", "/posts/{b1}/stats", 403),
        ("author", "/posts/{a1}/stats", 200),
        ("admin", "/posts/{b1}/stats/referrers.csv", 200),
        ("author", "/stats", 200),
    ],
)
def test_access(cast: Cast, known: dict[str, Any], who: str, path: str, status: int) -> None:
    answer = cast.client(who).get(path.format(**known))
    assert answer.status_code in ((302, 303) if status == 302 else (status,)), answer.text[:200]


@pytest.mark.parametrize(
    "path",
    [
        "/stats?days=8",
        "/stats?days=-7",
        "/stats?days=7x",
        "/stats?days=%00",
        "/stats/nope.csv",
        "/stats/days.csv?days=99999999999999999999",
        "/stats/..%2Fetc.csv",
        "/posts/{a1}/stats/nope.csv",
        "/posts/no-such-post/stats",
    ],
)
def test_bad_input_is_a_404(cast: Cast, known: dict[str, Any], path: str) -> None:
    assert cast.admin.get(path.format(**known)).status_code == 404


def test_every_table_round_trips_through_csv(cast: Cast, known: dict[str, Any]) -> None:
    page = cast.admin.get("/stats?days=30")
    for name, selector in [
        ("days", ".stats-days"),
        ("pages", ".stats-pages"),
        ("referrers", ".stats-referrers"),
        ("subscribers", ".stats-subscribers"),
    ]:
        rows = csv_rows(cast.admin.get(f"/stats/{name}.csv?days=30"))
        shown = table(page, selector)
        if name == "days":
            shown = [
                [day["datetime"], row[1]]
                for day, row in zip(page.html.select(".stats-days time"), shown, strict=True)
            ]
        assert rows[1:] == shown, name
    posts = csv_rows(cast.admin.get("/stats/posts.csv?days=30"))
    assert posts == [
        ["post", "slug", "views"],
        ["Alice one", known["a1"], "5"],
        ["Alice two", known["a2"], "4"],
        ["Bob one", known["b1"], "2"],
    ]
    searches = csv_rows(cast.admin.get("/stats/searches.csv?days=30"))
    # A cell a spreadsheet would run as a formula is defused.
    assert searches[1:] == [
        ["'=hyperlink(1)", "2", "0"],
        ["alice", "2", "2"],
        ["unicorns", "2", "0"],
    ]
    one = csv_rows(cast.author.get(f"/posts/{known['a2']}/stats/referrers.csv"))
    assert one == [["referrer", "views"], ["lobste.rs", "3"], [SEARCH_ENGINES_GROUP, "1"]]


# --- the roll-up, popular, privacy ----------------------------------------------------------


def test_day_rows_older_than_two_years_roll_up_into_months(site: tuple[Cast, str, int]) -> None:
    cast, slug, post_id = site
    stats = get_statistics(cast.app)
    today = stats.day()
    old = date(today.year - 3, 3, 1)
    for n in range(31):  # March, three years ago
        stats.add_views(old + timedelta(days=n), {post_id: n + 1}, {post_id: 1})
    stats.add_views(today - timedelta(days=400), {post_id: 7})  # a year ago: kept as it is
    done = tidy(cast.app)
    assert done["views"] == 31
    rows = {(r.day, r.period): r.views for r in rows_of(cast.app, StatView)}
    assert rows == {(old, "month"): sum(range(1, 32)), (today - timedelta(days=400), "day"): 7}
    assert tidy(cast.app)["views"] == 0  # nothing left to roll
    page = cast.author.get(f"/posts/{slug}/stats")
    assert page.html.select_one(".stats-total strong").get_text() == str(sum(range(1, 32)) + 7)
    assert [old.strftime("%B %Y"), "496"] in table(page, ".stats-months")


def test_rare_searches_of_past_days_are_dropped(clock: Clock, site: tuple[Cast, str, int]) -> None:
    cast, _, _ = site
    reader(cast.app).get("/search?q=rare")
    reader(cast.app, CHROME).get("/search?q=twice")
    reader(cast.app, SAFARI).get("/search?q=twice")
    tidy(cast.app)
    assert {r.term for r in rows_of(cast.app, StatSearch)} == {"rare", "twice"}  # today's stay
    clock.advance(days=1)
    tidy(cast.app)
    assert {r.term for r in rows_of(cast.app, StatSearch)} == {"twice"}


def test_privacy_page_states_the_settings(tmp_path: Any) -> None:
    app = build_app(tmp_path, STATS_REPEAT_MINUTES=45, STATS_DAILY_YEARS=3, TIMEZONE="Europe/Paris")
    try:
        page = app.test_client().get("/privacy")
        assert page.status_code == 200
        text = page.html.get_text(" ", strip=True)
        assert "within 45 minutes" in text and "for 3 years" in text and "Europe/Paris" in text
        assert "Sec-GPC: 1" in text
    finally:
        from pyproject.blog.db import get_database

        get_database(app).dispose()


def test_stats_on_every_database(any_db_cast: Cast) -> None:
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Everywhere"))
    for number in range(3):
        reader(cast.app, address=f"192.0.2.{number}").get(
            f"/posts/{slug}", headers={"Referer": "https://elsewhere.example/"}
        )
    reader(cast.app, address="192.0.2.0").get(f"/posts/{slug}")  # a repeat
    reader(cast.app).get("/search?q=everywhere")
    reader(cast.app, CHROME).get("/search?q=everywhere")
    cast.app.test_client().get(
        "/feed.atom", headers={"User-Agent": "Feedly/1.0 (; 5 subscribers; )"}
    )
    page = cast.admin.get("/stats?days=7")
    assert page.html.select_one(".stats-total strong").get_text() == "5"
    assert table(page, ".stats-referrers") == [["elsewhere.example", "3"]]
    assert table(page, ".stats-searches") == [["everywhere", "2", "1"]]
    assert table(page, ".stats-subscribers") == [["Feedly", "5"]]
    assert views_of(cast.app, slug) == 4
    assert tidy(cast.app)["views"] == 0


# --- exact counts under concurrency ---------------------------------------------------------


def test_concurrent_readers_are_each_counted_exactly_once(any_db_cast: Cast) -> None:
    # On PostgreSQL a view is one statement of several data-modifying parts (#13).
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Counted", tags="python"))
    post_id = get_post(cast.app, slug).id
    readers, rounds = 12, 10
    start = threading.Barrier(readers)
    failures: list[Any] = []

    def read(number: int) -> None:
        start.wait()
        for round_ in range(rounds):
            client = reader(cast.app, address=f"10.0.{number}.{round_}")
            status = client.get(f"/posts/{slug}").status_code
            client.get(f"/posts/{slug}")  # its repeat
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert day_views(cast.app, f"post:{post_id}") == {f"post:{post_id}": readers * rounds}
    assert views_of(cast.app, slug) == readers * rounds * 2
