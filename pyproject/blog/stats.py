"""First-party statistics (#22): which pages readers read, where from, what they searched for.

Counting rides on the view counter's fast path (pyproject.blog.db.ViewCounts): the same
plain connection, the same transaction as the post's all-time count, on the cached page
too (the page cache runs `on_hit` with the request's environ). Only browsers are counted
(known bots, feed readers and HEAD are not); a reader's repeat views of a page within
STATS_REPEAT_MINUTES count once, told apart by a hash of address, User-Agent, page and a
salt of the day that is deleted at midnight in the site's time zone. No address is kept,
nor anything else that names a reader: day buckets of counts, referring domains, search
terms seen at least STATS_SEARCH_MIN times a day, and the subscriber numbers feed readers
announce in their User-Agent.

On PostgreSQL the tables are the site's own (migration 0021); on SQLite they sit in the
counters' own file beside the site's, made there from the same models. The dashboard
(/stats, /posts/<slug>/stats) reads the day buckets only, never anything per request.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import heapq
import io
import json
import logging
import re
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from huey import crontab
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable

from pyproject.blog import jobs
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.caching import reader_page
from pyproject.blog.charts import bar_chart, day_label, sparkline
from pyproject.blog.db import Statement, ViewCounts, get_database, get_db, get_view_counts
from pyproject.blog.models import (
    Post,
    StatFeedReader,
    StatGeneration,
    StatRecentView,
    StatReferrer,
    StatSalt,
    StatSearch,
    StatView,
    StatWindow,
    User,
    UTCDateTime,
    utcnow,
    visible,
)
from pyproject.blog.subscriptions import csv_cell
from pyproject.lib import App, Request, Response, current_app, render_template
from pyproject.lib.app import current_request
from pyproject.lib.exceptions import NotFound
from pyproject.lib.response import Shared

log = logging.getLogger(__name__)

TABLES = tuple(
    model.__table__
    for model in (
        StatView,
        StatReferrer,
        StatSearch,
        StatFeedReader,
        StatRecentView,
        StatSalt,
        StatWindow,
        StatGeneration,
    )
)
WINDOWS = (7, 30, 365)
# The site-wide windows whose past days the periodic job keeps ready before anyone asks:
# /stats's, and 90 days beside them (a quarter: the next window /stats is likely to offer).
KEPT_WINDOWS = (7, 30, 90, 365)
DEFAULT_WINDOW = 30
TOP = 10
SEARCH_ENGINES_GROUP = "search engines"

# --- who is counted ------------------------------------------------------------------------

# Browsers say Mozilla/ (or Opera/); so do many robots, which also name themselves.
_BROWSER = re.compile(r"^(?:Mozilla|Opera)/\d")
_NOT_A_READER_WORDS = (
    r"bot|crawl|spider|slurp|archiv|fetch|feed|rss|reader|subscriber|preview|scan|monitor"
    r"|check|probe|headless|lighthouse|pagespeed|phantom|selenium|puppeteer|playwright"
    r"|python|curl|wget|httpclient|okhttp|java/|go-http|libwww|perl|ruby|php|node|axios"
    r"|scrapy|facebookexternalhit|embedly|whatsapp|telegram|discord|slack|skype|bitly"
)
_NOT_A_READER = re.compile(_NOT_A_READER_WORDS, re.IGNORECASE)
# On the counting path: an ASCII User-Agent (nearly all) lowercased, then matched case
# sensitively, is the same test at a tenth of the cost (22 against 2 µs for Firefox's);
# for ASCII text, ignoring case and lowercasing agree exactly.
_NOT_A_READER_LOWER = re.compile(_NOT_A_READER_WORDS)
_FEED_READER = re.compile(r"\b(\d{1,9})\s+(?:subscribers?|readers?)\b", re.IGNORECASE)
_READER_NAME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ._-]{0,59}?)\s*(?:/|\(|;| - |feed-id|$)")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9-]{1,63})*$")
_SEARCH_ENGINE = re.compile(
    r"(?:^|\.)(?:google|bing|duckduckgo|yahoo|yandex|baidu|ecosia|qwant|startpage|kagi"
    r"|naver|seznam|search\.brave|yep)\.[a-z.]+$"
)


def is_browser(user_agent: str) -> bool:
    """Give whether a User-Agent is a person's browser (not a robot, not a feed reader)."""
    if not _BROWSER.match(user_agent):
        return False
    if user_agent.isascii():
        return not _NOT_A_READER_LOWER.search(user_agent.lower())
    return not _NOT_A_READER.search(user_agent)


def feed_reader(user_agent: str) -> tuple[str, int] | None:
    """Give (name, subscribers) a feed reader announces ("Feedly ... 57 subscribers")."""
    found = _FEED_READER.search(user_agent)
    if found is None:
        return None
    name = _READER_NAME.match(user_agent)
    reader = name.group(1).strip() if name else "other"
    return (reader or "other")[:60], int(found.group(1))


def referrer_domain(value: str, own_hosts: Iterable[str]) -> str | None:
    """Give the referring site's domain ("www." dropped), search engines grouped; ours: None."""
    if not value or len(value) > 2000:
        return None
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".").lower()
    host = host.removeprefix("www.")
    if not _HOSTNAME.match(host) or host in own_hosts:
        return None
    if _SEARCH_ENGINE.search(host):
        return SEARCH_ENGINES_GROUP
    return host


def search_term(raw: str) -> str:
    """Give a search as it is counted: lowercased, spaces collapsed, at most 100 characters."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in raw[:400]).split())
    return cleaned.lower()[:100].strip()


@dataclass(slots=True, frozen=True)
class Visit:
    """What one counted request leaves: the page's hash key, and a referrer unless private."""

    digest: str
    referrer: str | None
    private: bool  # Sec-GPC: 1: counted as a view, never in referrers or searches


# --- the site's day ------------------------------------------------------------------------


def site_zone(app: App) -> ZoneInfo:
    """Give the site's time zone: the one place that says which (TIMEZONE, for now)."""
    name = str(app.config.get("TIMEZONE") or "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """Give the day a moment falls on in the site's zone."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Give midnight at the start of a day in the site's zone."""
    return datetime.combine(day, time(), zone)


# --- the fast path's statements -------------------------------------------------------------

_RECENT = Statement(
    sqlite=(
        "INSERT INTO stats_recent_views (digest, seen_at) VALUES (:digest, :now)"
        " ON CONFLICT (digest) DO UPDATE SET seen_at = excluded.seen_at"
        " WHERE stats_recent_views.seen_at <= :cutoff"
    ),
    # On PostgreSQL this and the two below are parts of _one_view_sql's one statement.
    postgresql=(
        "INSERT INTO stats_recent_views (digest, seen_at) VALUES (%(digest)s, %(now)s)"
        " ON CONFLICT (digest) DO UPDATE SET seen_at = excluded.seen_at"
        " WHERE stats_recent_views.seen_at <= %(cutoff)s RETURNING 1"
    ),
)
_VIEW = Statement(
    sqlite=(
        "INSERT INTO stats_views (day, page, period, post_id, author_id, views)"
        " VALUES (:day, :page, 'day', :post_id, :author_id, :views)"
        " ON CONFLICT (day, page) DO UPDATE SET views = stats_views.views + excluded.views"
    ),
    postgresql=(
        "INSERT INTO stats_views (day, page, period, post_id, author_id, views)"
        " VALUES (%(day)s, %(page)s, 'day', %(post_id)s, %(author_id)s, %(views)s)"
        " ON CONFLICT (day, page) DO UPDATE SET views = stats_views.views + excluded.views"
    ),
)
_REFERRER = Statement(
    sqlite=(
        "INSERT INTO stats_referrers (day, page, referrer, period, post_id, author_id, views)"
        " VALUES (:day, :page, :referrer, 'day', :post_id, :author_id, :views)"
        " ON CONFLICT (day, page, referrer)"
        " DO UPDATE SET views = stats_referrers.views + excluded.views"
    ),
    postgresql=(  # a row only from a fresh visit (_one_view_sql's `fresh`)
        "INSERT INTO stats_referrers (day, page, referrer, period, post_id, author_id, views)"
        " SELECT %(day)s::date, %(page)s::varchar, %(referrer)s::varchar, 'day',"
        " %(post_id)s::integer, %(author_id)s::integer, 1 FROM fresh"
        " ON CONFLICT (day, page, referrer)"
        " DO UPDATE SET views = stats_referrers.views + excluded.views"
    ),
)
_SEARCH = Statement(
    sqlite=(
        "INSERT INTO stats_searches (day, term, searches, found) VALUES (:day, :term, 1, :found)"
        " ON CONFLICT (day, term)"
        " DO UPDATE SET searches = stats_searches.searches + 1, found = excluded.found"
    ),
    postgresql=(  # a row only from a fresh visit (_one_view_sql's `fresh`)
        "INSERT INTO stats_searches (day, term, searches, found)"
        " SELECT %(day)s::date, %(term)s::varchar, 1, %(found)s::integer FROM fresh"
        " ON CONFLICT (day, term)"
        " DO UPDATE SET searches = stats_searches.searches + 1, found = excluded.found"
    ),
)


@functools.lru_cache(maxsize=8)
def _one_view_sql(post: bool, referred: bool, searched: bool) -> str:
    """Give one PostgreSQL statement for what Statistics.count writes of a browser's GET.

    The post's all-time count (always), then, only if the visit is not a repeat (its
    digest not seen within the repeat window), the day's view, referrer and search. Each
    part is a data-modifying WITH (PostgreSQL runs them all, in one snapshot, as one
    statement); those that depend on the visit being fresh insert from `fresh`, which has
    a row only then. On an autocommit connection it is its own transaction: one round
    trip, where BEGIN, two to five statements and COMMIT took four to seven.
    """
    parts = [f"counted AS ({ViewCounts.COUNT.postgresql})"] if post else []
    parts.append(f"fresh AS ({_RECENT.postgresql})")
    parts.append(
        "viewed AS (INSERT INTO stats_views (day, page, period, post_id, author_id, views)"
        " SELECT %(day)s::date, %(page)s::varchar, 'day', %(post_id)s::integer,"
        " %(author_id)s::integer, 1 FROM fresh"
        " ON CONFLICT (day, page) DO UPDATE SET views = stats_views.views + excluded.views)"
    )
    if referred:
        parts.append(f"referred AS ({_REFERRER.postgresql})")
    if searched:
        parts.append(f"searched AS ({_SEARCH.postgresql})")
    return f"WITH {', '.join(parts)} SELECT count(*) FROM fresh"  # noqa: S608  # nosec B608


_FEED = Statement(
    sqlite=(
        "INSERT INTO stats_feed_readers (day, reader, feed, subscribers)"
        " VALUES (:day, :reader, :feed, :subscribers)"
        " ON CONFLICT (day, reader, feed) DO UPDATE SET subscribers = excluded.subscribers"
    ),
    postgresql=(
        "INSERT INTO stats_feed_readers (day, reader, feed, subscribers)"
        " VALUES (%(day)s, %(reader)s, %(feed)s, %(subscribers)s)"
        " ON CONFLICT (day, reader, feed) DO UPDATE SET subscribers = excluded.subscribers"
    ),
)
_SALT_ADD = Statement(
    sqlite="INSERT INTO stats_salts (day, salt) VALUES (:day, :salt) ON CONFLICT (day) DO NOTHING",
    postgresql=(
        "INSERT INTO stats_salts (day, salt) VALUES (%(day)s, %(salt)s)"
        " ON CONFLICT (day) DO NOTHING"
    ),
)
_SALT_GET = Statement(
    sqlite="SELECT salt FROM stats_salts WHERE day = :day",
    postgresql="SELECT salt FROM stats_salts WHERE day = %(day)s",
)
_SALT_DROP = Statement(
    sqlite="DELETE FROM stats_salts WHERE day <> :day",
    postgresql="DELETE FROM stats_salts WHERE day <> %(day)s",
)
_RECENT_DROP = Statement(
    sqlite="DELETE FROM stats_recent_views WHERE seen_at < :before",
    postgresql="DELETE FROM stats_recent_views WHERE seen_at < %(before)s",
)
# Two workers that sum the same window at once write the same row: the later write of a
# generation changes nothing, and an older generation never replaces a newer one.
_WINDOW_PUT = Statement(
    sqlite=(
        "INSERT INTO stats_windows"
        " (kind, first_day, last_day, author_id, minimum, generation, sums)"
        " VALUES (:kind, :first_day, :last_day, :author_id, :minimum, :generation, :sums)"
        " ON CONFLICT (kind, first_day, last_day, author_id, minimum)"
        " DO UPDATE SET generation = excluded.generation, sums = excluded.sums"
        " WHERE excluded.generation > stats_windows.generation"
    ),
    postgresql=(
        "INSERT INTO stats_windows"
        " (kind, first_day, last_day, author_id, minimum, generation, sums)"
        " VALUES (%(kind)s, %(first_day)s, %(last_day)s, %(author_id)s, %(minimum)s,"
        " %(generation)s, %(sums)s)"
        " ON CONFLICT (kind, first_day, last_day, author_id, minimum)"
        " DO UPDATE SET generation = excluded.generation, sums = excluded.sums"
        " WHERE excluded.generation > stats_windows.generation"
    ),
)
# The same text in both dialects (no parameters), so the roll-up's SQLAlchemy connection
# runs it as it is, and add_views's plain one as a Statement.
_GENERATION_BUMP_SQL = (
    "INSERT INTO stats_generation (id, generation) VALUES (1, 1)"
    " ON CONFLICT (id) DO UPDATE SET generation = stats_generation.generation + 1"
)
_GENERATION_BUMP = Statement(sqlite=_GENERATION_BUMP_SQL, postgresql=_GENERATION_BUMP_SQL)


def sqlite_schema() -> list[str]:
    """Give the statements that make the statistics tables in a SQLite file (if absent)."""
    dialect = sqlite_dialect.dialect()
    statements = []
    for table in TABLES:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    return statements


class Statistics:
    """Counts what readers read into day buckets, and reads the buckets back."""

    def __init__(self, app: App, counts: ViewCounts) -> None:
        config = app.config
        self.app = app
        self.counts = counts
        self.raw = counts.raw
        self.sqlite = counts.sqlite_path is not None
        self.enabled = bool(config.get("STATS_ENABLED", True))
        self.repeat_seconds = max(0, int(config.get("STATS_REPEAT_MINUTES", 30))) * 60
        self.search_min = max(1, int(config.get("STATS_SEARCH_MIN", 2)))
        self.daily_years = max(1, int(config.get("STATS_DAILY_YEARS", 2)))
        self.zone = site_zone(app)
        hosts = [str(h).split(":")[0].lower() for h in config.get("ALLOWED_HOSTS") or ()]
        base = urlsplit(str(config.get("BASE_URL") or "")).hostname
        self.own_hosts = {h.removeprefix("www.") for h in (*hosts, base or "") if h}
        self._salt: tuple[date, str] | None = None
        self._salt_lock = threading.Lock()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        # A layer in front of the kept windows (stats_windows): keyed by the database's
        # generation, so it is never trusted past a change another worker made.
        self._past: dict[tuple[Any, ...], Any] = {}
        self._past_lock = threading.Lock()
        self._reading = threading.local()  # the generation read in this thread's reading()

    # --- the day and its salt ---

    def day(self, now: datetime | None = None) -> date:
        """Give today in the site's zone (or the day `now` falls on)."""
        return local_day(now or utcnow(), self.zone)

    def _day_param(self, day: date) -> Any:
        return day.isoformat() if self.sqlite else day

    def _ready(self) -> None:
        """Make the tables in the counters' SQLite file, once per connection."""
        if not self.sqlite or getattr(self.raw.local, "stats_ready", False):
            return
        with self.raw.transaction() as connection:
            for statement in sqlite_schema():
                connection.execute(statement)
        self.raw.local.stats_ready = True

    def salt(self, now: datetime | None = None) -> str:
        """Give the day's salt; at a new day the old one (and every hash made with it) goes."""
        day = self.day(now)
        kept = self._salt
        if kept is not None and kept[0] == day:
            return kept[1]
        with self._salt_lock:
            self._ready()
            param = self._day_param(day)
            midnight = int(day_start(day, self.zone).timestamp())
            with self.raw.transaction():
                self.raw.run(_RECENT_DROP, {"before": midnight})
                self.raw.run(_SALT_DROP, {"day": param})
                self.raw.run(_SALT_ADD, {"day": param, "salt": secrets.token_hex(32)})
                salt = self.raw.run(_SALT_GET, {"day": param}).fetchone()[0]
            self._salt = (day, salt)
            return salt

    # --- counting ---

    def visit(self, environ: dict[str, Any], key: str, now: datetime) -> Visit | None:
        """Give what a request counts as, or None when it is not a reader's view."""
        if not self.enabled or environ.get("REQUEST_METHOD") != "GET":
            return None
        agent = str(environ.get("HTTP_USER_AGENT") or "")[:1000]
        if not is_browser(agent):
            return None
        address = str(environ.get("REMOTE_ADDR") or "")
        salt = self.salt(now)
        digest = hashlib.sha256(
            "\0".join((salt, address, agent, key)).encode("utf-8", "replace")
        ).hexdigest()[:32]
        private = str(environ.get("HTTP_SEC_GPC") or "").strip() == "1"
        referrer = None
        if not private:
            own = self.own_hosts | {str(environ.get("HTTP_HOST") or "").split(":")[0].lower()}
            referrer = referrer_domain(str(environ.get("HTTP_REFERER") or ""), own)
        return Visit(digest, referrer, private)

    def count(
        self,
        environ: dict[str, Any],
        page: str,
        *,
        post_id: int | None = None,
        author_id: int | None = None,
        key: str | None = None,
        search: tuple[str, int] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Count a GET of a page; give whether it was counted as a reader's view.

        A post's all-time count (ViewCounts) takes every GET, as it always has; the day
        buckets only browsers' views that are not repeats. `key` tells pages apart for
        repeats (default: `page`); `search` is (term, hits) for /search.
        """
        if environ.get("REQUEST_METHOD") != "GET":
            return False
        now = now or utcnow()
        visit = self.visit(environ, key or page, now)
        if visit is None:
            if post_id is not None:
                self.counts.count(post_id)
            return False
        seconds = int(now.timestamp())
        day = self._day_param(self.day(now))
        raw = self.raw
        if raw.dialect == "postgresql":  # one statement, one round trip (#13)
            shape = (post_id is not None, visit.referrer is not None)
            searched = search is not None and not visit.private and bool(search[0])
            params = {
                "id": post_id,
                "digest": visit.digest,
                "now": seconds,
                "cutoff": seconds - self.repeat_seconds,
                "day": day,
                "page": page,
                "post_id": post_id,
                "author_id": author_id,
                "referrer": visit.referrer,
                "term": search[0] if searched and search else None,
                "found": search[1] if searched and search else None,
            }
            fresh = raw.run_text(_one_view_sql(*shape, searched), params)
            return fresh.fetchone()[0] == 1
        self._ready()
        with raw.transaction():
            if post_id is not None:
                raw.run(ViewCounts.COUNT, {"id": post_id})
            fresh = raw.run(
                _RECENT,
                {"digest": visit.digest, "now": seconds, "cutoff": seconds - self.repeat_seconds},
            ).rowcount
            if fresh != 1:
                return False
            row = {"day": day, "page": page, "post_id": post_id, "author_id": author_id, "views": 1}
            raw.run(_VIEW, row)
            if visit.referrer is not None:
                raw.run(_REFERRER, {**row, "referrer": visit.referrer})
            if search is not None and not visit.private and search[0]:
                raw.run(_SEARCH, {"day": day, "term": search[0], "found": search[1]})
        return True

    def count_feed_reader(self, environ: dict[str, Any], now: datetime | None = None) -> None:
        """Keep the subscribers a feed reader announces for this feed (the day's latest)."""
        if not self.enabled or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return
        announced = feed_reader(str(environ.get("HTTP_USER_AGENT") or "")[:1000])
        if announced is None:
            return
        reader, subscribers = announced
        self._ready()
        feed = str(environ.get("PATH_INFO") or "")[:200]
        with self.raw.transaction():
            self.raw.run(
                _FEED,
                {
                    "day": self._day_param(self.day(now)),
                    "reader": reader,
                    "feed": feed,
                    "subscribers": subscribers,
                },
            )

    def add_views(
        self, day: date, views: dict[int, int], authors: dict[int, int] | None = None
    ) -> None:
        """Add day counts of posts outright (imports, generated sites, tests)."""
        self._ready()
        authors = authors or {}
        rows = [
            {
                "day": self._day_param(day),
                "page": f"post:{post_id}",
                "post_id": post_id,
                "author_id": authors.get(post_id),
                "views": count,
            }
            for post_id, count in views.items()
        ]
        with self.raw.transaction():
            self.raw.run_many(_VIEW, rows)
            self.raw.run(_GENERATION_BUMP)  # in the same transaction: no stale window after

    # --- reading ---

    def engine(self) -> Engine:
        """Give the engine the buckets are read with (the counters' own file on SQLite)."""
        if not self.sqlite:
            return get_database(self.app).engine
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._ready()
                    engine = create_engine(f"sqlite:///{self.counts.path}")

                    @event.listens_for(engine, "connect")
                    def _pragmas(connection: Any, _record: Any) -> None:
                        connection.execute("PRAGMA busy_timeout=10000")

                    self._engine = engine
        return self._engine

    def changed_past(self) -> None:
        """Make every kept window stale: past days' buckets were written outside add_views."""
        self._ready()
        with self.raw.transaction():
            self.raw.run(_GENERATION_BUMP)

    def generation(self, connection: Connection) -> int:
        """Give the database's generation of past days' buckets (read once per reading())."""
        local = self._reading
        if getattr(local, "connection", None) is connection:
            return local.generation
        found = connection.execute(_GENERATION).scalar()
        local.connection, local.generation = connection, int(found or 0)
        return local.generation

    def past(
        self,
        connection: Connection,
        kind: str,
        first: date,
        last: date,
        scope: Scope,
        minimum: int = 1,
    ) -> Kept:
        """Give the kept sums() of days before today: a day that is over never changes.

        Looked for in this worker's memory, then in stats_windows (which every worker and
        host reads); summed and written there when neither has it at the database's
        generation (add_views and the roll-up move that on).
        """
        return self._past_kept(connection, kind, first, last, scope, minimum)[0]

    def _past_kept(
        self,
        connection: Connection,
        kind: str,
        first: date,
        last: date,
        scope: Scope,
        minimum: int,
    ) -> tuple[Kept, bool]:
        """Give (kept sums, whether they were summed now) for past()."""
        generation = self.generation(connection)
        author = scope.author_id or 0
        key = (generation, kind, first, last, author, minimum)
        kept = self._past.get(key)
        made = False
        if kept is None:
            row = connection.execute(
                select(StatWindow.generation, StatWindow.sums).where(
                    StatWindow.kind == kind,
                    StatWindow.first_day == first,
                    StatWindow.last_day == last,
                    StatWindow.author_id == author,
                    StatWindow.minimum == minimum,
                )
            ).first()
            if row is not None and row.generation == generation:
                kept = Kept.decode(kind, row.sums)
            else:
                kept = Kept.of(kind, sums(connection, kind, first, last, scope, minimum))
                made = True
                self._keep(key, kept)
            with self._past_lock:
                if len(self._past) >= 200:
                    self._past.clear()
                self._past[key] = kept
        return kept, made

    def _keep(self, key: tuple[Any, ...], kept: Kept) -> None:
        """Write a window's sums for every worker; a failure only costs the next one a sum."""
        generation, kind, first, last, author, minimum = key
        try:
            self._ready()
            with self.raw.transaction():
                self.raw.run(
                    _WINDOW_PUT,
                    {
                        "kind": kind,
                        "first_day": self._day_param(first),
                        "last_day": self._day_param(last),
                        "author_id": author,
                        "minimum": minimum,
                        "generation": generation,
                        "sums": kept.encode(),
                    },
                )
        except Exception:  # the page is still right, from the sums in hand
            log.warning("could not keep the %s sums of %s to %s", kind, first, last, exc_info=True)

    def window_sums(
        self,
        connection: Connection,
        kind: str,
        first: date,
        last: date,
        scope: Scope,
        minimum: int = 1,
    ) -> dict[Any, Any]:
        """Give sums() of a window: the past days' kept, today's read now."""
        today = self.day()
        live: dict[Any, Any] = {}
        if last >= today:
            live = sums(connection, kind, max(first, today), last, scope, minimum)
        if first >= today:
            return live
        end = min(last, today - timedelta(days=1))
        kept = self.past(connection, kind, first, end, scope, minimum=minimum)
        if kept.counts is None:  # too many keys to keep them all (never for days)
            return merged(sums(connection, kind, first, end, scope, minimum), live)
        return merged(kept.counts, live)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """Give a connection to read the buckets with: within a request on PostgreSQL (the
        buckets in the site's own database) the request's, never a second beside it."""
        request = current_request()
        try:
            if not self.sqlite and request is not None:
                yield get_db(request).connection()
                return
            with self.engine().connect() as connection:
                yield connection
        finally:
            self._reading.connection = None  # the next reading() reads the generation anew

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


_GENERATION = select(StatGeneration.generation).where(StatGeneration.id == 1)


def get_statistics(app: App) -> Statistics:
    """Give the app's statistics (made on first use, beside its view counts)."""
    stats = app.extensions.get("stats")
    if stats is None:
        stats = app.extensions["stats"] = Statistics(app, get_view_counts(app))
    return stats


def page_counter(
    page: str,
    *,
    post_id: int | None = None,
    author_id: int | None = None,
    key: str | None = None,
    search: tuple[str, int] | None = None,
) -> Callable[[dict[str, Any]], None]:
    """Give the function of a request's environ that counts a view of this page.

    The view calls it, and the page cache calls it again whenever it serves the kept page.
    """
    stats = get_statistics(current_app())

    def count(environ: dict[str, Any]) -> None:
        stats.count(environ, page, post_id=post_id, author_id=author_id, key=key, search=search)

    return count


def counted(request: Request, body: str | Response, page: str, **what: Any) -> Response:
    """Give a reader page's response with its view counted now and on every cached hit."""
    response = body if isinstance(body, Response) else Response(body)
    count = page_counter(page, **what)
    count(request.environ)
    response.shared = Shared(on_hit=count)
    return response


class FeedReaders:
    """WSGI middleware: notes the subscribers feed readers announce on our feeds.

    In front of the page cache, since readers mostly revalidate (a 304 counts too).
    """

    def __init__(self, wsgi_app: Callable[..., Any], app: App) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or ""
        if not path.endswith((".atom", ".rss")):
            return self.wsgi_app(environ, start_response)

        def note_status(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if status[:3] in ("200", "304"):
                try:
                    get_statistics(self.app).count_feed_reader(environ)
                except Exception:  # the counters are away: the feed is still served
                    log.exception("could not note a feed reader's subscribers")
            return start_response(status, headers, *args)

        return self.wsgi_app(environ, note_status)


# --- reading the buckets --------------------------------------------------------------------


@dataclass
class Scope:
    """Whose numbers: everyone's (an admin), or one author's posts."""

    author_id: int | None  # None: the whole site

    def views(self, query: Any, table: Any = StatView) -> Any:
        if self.author_id is None:
            return query
        return query.where(table.author_id == self.author_id)


def window_days(request: Request) -> int:
    """Give ?days= (7, 30 or 365; 30 when absent); anything else is a 404."""
    raw = request.args.get("days")
    if raw is None:
        return DEFAULT_WINDOW
    if raw not in {str(n) for n in WINDOWS}:
        raise NotFound("Statistics cover 7, 30 or 365 days.")
    return int(raw)


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _window(query: Any, table: Any, first: date, last: date) -> Any:
    return query.where(table.day >= first, table.day <= last)


_SUM_KEYS = {
    "days": StatView.day,
    "posts": StatView.post_id,
    "pages": StatView.page,
    "referrers": StatReferrer.referrer,
}


@functools.lru_cache(maxsize=64)
def _sums_statement(kind: str, keyed: bool, scoped: bool, largest: bool, one_day: bool) -> Any:
    """Give the statement of a sums() call (not "searches"), built once per shape.

    Bound parameters: `first` and `last` (or `first` alone for one day), `keys`
    (expanding), `author`, `largest`. A post has one row a day (its page is
    "post:<id>", the table's key is the day and the page), so one day's sums by post are
    its rows: read largest first from ix_stats_views_day_views, with no grouping (#13).
    """
    table = StatReferrer if kind == "referrers" else StatView
    key = _SUM_KEYS[kind]
    one_post_a_row = one_day and kind == "posts"
    total = table.views if one_post_a_row else func.sum(table.views)
    query = select(key, total)
    if one_day:
        query = query.where(table.day == bindparam("first"))
    else:
        query = query.where(table.day >= bindparam("first"), table.day <= bindparam("last"))
    if keyed:
        query = query.where(key.in_(bindparam("keys", expanding=True)))
    if kind == "posts":
        query = query.where(StatView.post_id.is_not(None))
    elif kind == "pages":
        query = query.where(StatView.post_id.is_(None))
    elif kind == "days":
        query = query.where(StatView.period == "day")
    if scoped:
        query = query.where(table.author_id == bindparam("author"))
    if not one_post_a_row:
        query = query.group_by(key)
    if largest:
        query = query.order_by(total.desc(), key).limit(bindparam("largest"))
    return query


def sums(
    connection: Connection,
    kind: str,
    first: date,
    last: date,
    scope: Scope,
    minimum: int = 1,
    keys: Iterable[Any] | None = None,
    largest: int | None = None,
) -> dict[Any, Any]:
    """Give a window's counts summed by one key: days, posts, pages, referrers or searches.

    "searches" gives {term: (searches, hits last time)}, counting only a term's days with
    `minimum` searches or more (the rest are not kept); the others {key: views}. With
    `keys`, only those keys' sums; with `largest` (not for searches), only the `largest`
    largest, largest first (ties: by key, smallest first, as ranked() orders them).
    """
    if kind == "searches":
        query = _window(
            select(StatSearch.term, func.sum(StatSearch.searches), func.min(StatSearch.found)),
            StatSearch,
            first,
            last,
        ).where(StatSearch.searches >= minimum)
        if keys is not None:
            query = query.where(StatSearch.term.in_(list(keys)))
        rows = connection.execute(query.group_by(StatSearch.term))
        return {str(term): (int(count), int(found)) for term, count, found in rows}
    statement = _sums_statement(
        kind, keys is not None, scope.author_id is not None, largest is not None, first == last
    )
    params: dict[str, Any] = {"first": first, "last": last}
    if keys is not None:
        params["keys"] = list(keys)
    if scope.author_id is not None:
        params["author"] = scope.author_id
    if largest is not None:
        params["largest"] = largest
    return {k: int(v) for k, v in connection.execute(statement, params)}


def merged(past: dict[Any, Any], live: dict[Any, Any]) -> dict[Any, Any]:
    """Give two windows' sums as one (searches: counts added, the latest hits kept)."""
    if not live:
        return past
    together = dict(past)
    for key, value in live.items():
        if key not in together:
            together[key] = value
        elif isinstance(value, tuple):
            together[key] = (together[key][0] + value[0], value[1])
        else:
            together[key] += value
    return together


def _value(item: tuple[Any, Any]) -> int:
    return item[1][0] if isinstance(item[1], tuple) else item[1]


def ranked(counts: dict[Any, Any], limit: int) -> list[tuple[Any, Any]]:
    """Give the `limit` largest counts, largest first (ties: by key, smallest first)."""
    return heapq.nsmallest(limit, counts.items(), key=lambda item: (-_value(item), item[0]))


# How many of the past days' largest sums are kept ranked (see leaders()), and up to how
# many keys a window keeps every sum: beyond, only the ranked ones (a year's posts on a big
# site are tens of thousands: a JSON too long to decode on every worker's first render).
PAST_TOP = 300
KEEP_ALL = 2000


@dataclass(slots=True)
class Kept:
    """A window's past days' sums as kept: the PAST_TOP largest ranked, and every sum
    where there are at most KEEP_ALL keys (days always: a window has few)."""

    top: list[tuple[Any, Any]]
    counts: dict[Any, Any] | None
    size: int  # how many keys have a sum

    @classmethod
    def of(cls, kind: str, counts: dict[Any, Any]) -> Kept:
        """Give what is kept of a window's sums()."""
        if kind == "days":
            return cls([], counts, len(counts))
        return cls(
            ranked(counts, PAST_TOP), counts if len(counts) <= KEEP_ALL else None, len(counts)
        )

    def encode(self) -> str:
        """Give the JSON of stats_windows.sums: [key, value] pairs (keys may be dates)."""

        def pairs(items: Iterable[tuple[Any, Any]]) -> list[list[Any]]:
            return [[k.isoformat() if isinstance(k, date) else k, v] for k, v in items]

        return json.dumps(
            {
                "top": pairs(self.top),
                "all": None if self.counts is None else pairs(self.counts.items()),
                "size": self.size,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, kind: str, text: str) -> Kept:
        """Give the kept sums back from their JSON, keys and values as sums() gives them."""
        data = json.loads(text)
        key: Callable[[Any], Any] = date.fromisoformat if kind == "days" else (lambda k: k)
        value: Callable[[Any], Any] = tuple if kind == "searches" else (lambda v: v)
        every = data["all"]
        return cls(
            [(key(k), value(v)) for k, v in data["top"]],
            None if every is None else {key(k): value(v) for k, v in every},
            int(data["size"]),
        )


def daily_views(
    connection: Connection, first: date, last: date, scope: Scope, post_id: int | None = None
) -> list[tuple[date, int]]:
    """Give (day, views) for every day from first to last, zeros included."""
    if post_id is None:
        counts = get_statistics(current_app()).window_sums(connection, "days", first, last, scope)
    else:
        query = _window(
            select(StatView.day, func.sum(StatView.views)), StatView, first, last
        ).where(StatView.period == "day", StatView.post_id == post_id)
        counts = dict(connection.execute(query.group_by(StatView.day)).all())
    return [(day, int(counts.get(day, 0))) for day in day_range(first, last)]


def leaders(
    connection: Connection,
    kind: str,
    first: date,
    last: date,
    scope: Scope,
    limit: int,
    minimum: int = 1,
) -> list[tuple[Any, Any]]:
    """Give the `limit` largest sums() of a window, largest first.

    The past days' sums are kept (Statistics.past) with their PAST_TOP largest; today's
    are added to those and to every key seen today (whose past sum is read where the kept
    window has only the ranked ones). Any other key has only its past sum, at most the
    last kept one: when the answer's last is above that, it is exact without a look at
    the rest.
    """
    stats = get_statistics(current_app())
    today = stats.day()
    end = min(last, today - timedelta(days=1))
    if first < today <= last and kind != "searches":
        kept = stats.past(connection, kind, first, end, scope, minimum)
        top = _bounded_leaders(connection, kind, (today, last), (first, end), kept, scope, limit)
        if top is not None:
            return top
    live: dict[Any, Any] = {}
    if last >= today:
        live = sums(connection, kind, max(first, today), last, scope, minimum)
    if first >= today:
        return ranked(live, limit)
    kept = stats.past(connection, kind, first, end, scope, minimum)
    if kept.counts is not None:
        past = {key: kept.counts[key] for key, _ in kept.top}
        past.update((key, kept.counts[key]) for key in live if key in kept.counts)
    else:
        past = dict(kept.top)
        unknown = [key for key in live if key not in past]
        if unknown:
            past.update(sums(connection, kind, first, end, scope, minimum, keys=unknown))
    top = ranked(merged(past, live), limit)
    floor = _value(kept.top[-1]) if len(kept.top) == PAST_TOP else -1
    if kept.size > len(kept.top) and (len(top) < limit or _value(top[-1]) <= floor):
        every = kept.counts
        if every is None:
            every = sums(connection, kind, first, end, scope, minimum)
        top = ranked(merged(every, live), limit)
    return top


# How many of today's largest sums leaders() asks for first (see _bounded_leaders).
LIVE_TOP = 200


def _bounded_leaders(
    connection: Connection,
    kind: str,
    today: tuple[date, date],
    past_days: tuple[date, date],
    kept: Kept,
    scope: Scope,
    limit: int,
) -> list[tuple[Any, Any]] | None:
    """Give the `limit` largest sums of today and past days together, from the largest of
    each side, or None when those do not prove the answer.

    Today's LIVE_TOP largest come ranked from SQL, the past days' largest are kept; the
    candidates are the keys of either, each given its exact sum on both sides (a keyed
    query for at most LIVE_TOP or PAST_TOP keys). A key on neither list has at most the
    smaller end of each: when the answer's last is above that, nothing else can be in it.
    Summing every key read today in Python cost the home page more than half of its CPU
    once a few thousand posts had been read that day (#13).
    """
    live = sums(connection, kind, *today, scope, largest=LIVE_TOP)
    if kept.size == 0 and limit <= LIVE_TOP:
        # No past day has a sum (a new site, a quiet week): SQL's ranking of today, ties
        # by key, is the answer. (The bound below needs the last place to beat what
        # ties it; with flat counts it never did, and every key read today was summed.)
        return ranked(live, limit)
    live_floor = min(live.values()) if len(live) == LIVE_TOP else 0
    past = dict(kept.top)
    past_floor = _value(kept.top[-1]) if kept.top and kept.size > len(kept.top) else 0
    unknown_past = [key for key in live if key not in past]
    if unknown_past and past_floor:  # ranked today, with a past sum not kept ranked
        if kept.counts is not None:
            past.update((key, kept.counts[key]) for key in unknown_past if key in kept.counts)
        else:
            past.update(sums(connection, kind, *past_days, scope, keys=unknown_past))
    unknown_live = [key for key, _ in kept.top if key not in live]
    if unknown_live and live_floor:  # ranked in the past, read today past the list
        live = {**live, **sums(connection, kind, *today, scope, keys=unknown_live)}
    totals = {key: past.get(key, 0) + live.get(key, 0) for key in {*past, *live}}
    top = ranked(totals, limit)
    outside = past_floor + live_floor  # the most a key on neither list can have
    if not outside or (len(top) == limit and top[-1][1] > outside):
        return top
    return None


def top_posts(
    connection: Connection, first: date, last: date, scope: Scope, limit: int
) -> list[tuple[int, int]]:
    """Give (post id, views) of the most viewed posts in a window, most first."""
    return [(int(p), int(v)) for p, v in leaders(connection, "posts", first, last, scope, limit)]


def top_pages(connection: Connection, first: date, last: date, limit: int) -> list[tuple[str, int]]:
    """Give (page, views) of the site's other pages (home, tags, search), most first."""
    top = leaders(connection, "pages", first, last, Scope(None), limit)
    return [(str(p), int(v)) for p, v in top]


def top_referrers(
    connection: Connection,
    first: date,
    last: date,
    scope: Scope,
    limit: int,
    post_id: int | None = None,
) -> list[tuple[str, int]]:
    """Give (domain, views) of the sites readers came from, most first."""
    if post_id is None:
        top = leaders(connection, "referrers", first, last, scope, limit)
    else:
        query = _window(
            select(StatReferrer.referrer, func.sum(StatReferrer.views)), StatReferrer, first, last
        ).where(StatReferrer.post_id == post_id)
        counts = dict(connection.execute(query.group_by(StatReferrer.referrer)).all())
        top = ranked(counts, limit)
    return [(str(r), int(v)) for r, v in top]


def top_searches(
    connection: Connection, first: date, last: date, minimum: int, limit: int
) -> list[tuple[str, int, int]]:
    """Give (term, searches, hits last time) of the window's searches, most first."""
    top = leaders(connection, "searches", first, last, Scope(None), limit, minimum)
    return [(str(t), int(s), int(f)) for t, (s, f) in top]


def _trend_rows(
    connection: Connection, first: date, last: date, post_ids: list[int]
) -> list[tuple[int, date, int]]:
    rows = connection.execute(
        select(StatView.post_id, StatView.day, StatView.views).where(
            StatView.post_id.in_(post_ids), StatView.day >= first, StatView.day <= last
        )
    )
    return [(int(post_id), day, int(views)) for post_id, day, views in rows]


def trends(
    connection: Connection, first: date, last: date, post_ids: list[int]
) -> dict[int, list[int]]:
    """Give each post's views for every day of a window (for its trend line).

    The past days' rows are kept, as the sums are (Statistics.past).
    """
    if not post_ids:
        return {}
    stats = get_statistics(current_app())
    today = stats.day()
    rows: list[tuple[int, date, int]] = []
    if first < today:
        end = min(last, today - timedelta(days=1))
        key = (stats.generation(connection), "trends", first, end, tuple(post_ids))
        kept = stats._past.get(key)
        if kept is None:
            kept = stats._past[key] = _trend_rows(connection, first, end, post_ids)
        rows = kept
    if last >= today:
        rows = rows + _trend_rows(connection, max(first, today), last, post_ids)
    days = day_range(first, last)
    index = {day: n for n, day in enumerate(days)}
    lines = {post_id: [0] * len(days) for post_id in post_ids}
    for post_id, day, views in rows:
        if day in index:
            lines[post_id][index[day]] += views
    return lines


def feed_subscribers(connection: Connection, first: date, last: date) -> list[tuple[str, int]]:
    """Give (reader, subscribers) from each reader's latest report per feed, most first."""
    rows = connection.execute(
        select(
            StatFeedReader.reader,
            StatFeedReader.feed,
            StatFeedReader.day,
            StatFeedReader.subscribers,
        )
        .where(StatFeedReader.day >= first, StatFeedReader.day <= last)
        .order_by(StatFeedReader.day)
    ).all()
    latest: dict[tuple[str, str], int] = {}
    for reader, feed, _day, subscribers in rows:
        latest[(reader, feed)] = int(subscribers)
    by_reader: dict[str, int] = defaultdict(int)
    for (reader, _feed), subscribers in latest.items():
        by_reader[reader] += subscribers
    return sorted(by_reader.items(), key=lambda item: (-item[1], item[0]))


def post_titles(db: Session, post_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Give {id: (title, slug)} of these posts that still exist (not in the trash)."""
    ids = list(post_ids)
    if not ids:
        return {}
    rows = db.execute(
        select(Post.id, Post.title, Post.slug).where(Post.id.in_(ids), Post.deleted_at.is_(None))
    ).all()
    return {row.id: (row.title, row.slug) for row in rows}


# Which of these posts readers may see (built once: compiled once).
_VISIBLE_OF = select(Post.id).where(
    Post.id.in_(bindparam("ids", expanding=True)),
    *visible(bindparam("now", type_=UTCDateTime())),
)


def most_read(db: Session, now: datetime, *, days: int, count: int) -> list[tuple[int, int]]:
    """Give (id, views) of the posts most read in the last `days` days (visible ones only)."""
    stats = get_statistics(current_app())
    last = stats.day(now)
    first = last - timedelta(days=days - 1)
    with stats.reading() as connection:
        top = top_posts(connection, first, last, Scope(None), count * 4)
    if not top:
        return []
    params = {"ids": [post_id for post_id, _ in top], "now": now}
    shown = set(db.connection().execute(_VISIBLE_OF, params).scalars())
    return [(post_id, views) for post_id, views in top if post_id in shown][:count]


def page_label(page: str) -> str:
    """Give a page key as readers know the page: "home", "tag: python", "search"."""
    kind, _, rest = page.partition(":")
    return f"{kind}: {rest}" if rest else kind


@dataclass
class Dashboard:
    """Everything /stats shows, as numbers (the template and the CSV both read this)."""

    days: int
    first: date
    last: date
    daily: list[tuple[date, int]]
    posts: list[dict[str, Any]]
    pages: list[tuple[str, int]]
    referrers: list[tuple[str, int]]
    searches: list[tuple[str, int, int]]
    subscribers: list[tuple[str, int]]
    site_wide: bool

    @property
    def total(self) -> int:
        return sum(views for _, views in self.daily)


def dashboard(db: Session, user: User, days: int) -> Dashboard:
    """Give the numbers of /stats for a user over the last `days` days."""
    stats = get_statistics(current_app())
    last = stats.day()
    first = last - timedelta(days=days - 1)
    scope = Scope(None if user.is_admin else user.id)
    with stats.reading() as connection:
        daily = daily_views(connection, first, last, scope)
        top = top_posts(connection, first, last, scope, TOP)
        lines = trends(connection, first, last, [post_id for post_id, _ in top])
        referrers = top_referrers(connection, first, last, scope, TOP)
        pages: list[tuple[str, int]] = []
        searches: list[tuple[str, int, int]] = []
        subscribers: list[tuple[str, int]] = []
        if scope.author_id is None:
            pages = top_pages(connection, first, last, TOP)
            searches = top_searches(connection, first, last, stats.search_min, TOP)
            subscribers = feed_subscribers(connection, first, last)
    titles = post_titles(db, [post_id for post_id, _ in top])
    posts = [
        {
            "id": post_id,
            "title": titles.get(post_id, ("(a deleted post)", None))[0],
            "slug": titles.get(post_id, (None, None))[1],
            "views": views,
            "trend": lines.get(post_id, []),
        }
        for post_id, views in top
    ]
    return Dashboard(
        days,
        first,
        last,
        daily,
        posts,
        pages,
        referrers,
        searches,
        subscribers,
        scope.author_id is None,
    )


def post_numbers(post: Post) -> dict[str, Any]:
    """Give one post's daily views since publication (the last 2 years) and its referrers."""
    stats = get_statistics(current_app())
    last = stats.day()
    published = stats.day(post.published_at) if post.published_at else last
    first = max(min(published, last), last - timedelta(days=365 * stats.daily_years - 1))
    scope = Scope(None)
    with stats.reading() as connection:
        daily = daily_views(connection, first, last, scope, post_id=post.id)
        referrers = top_referrers(connection, published, last, scope, 50, post_id=post.id)
        months = connection.execute(
            select(StatView.day, StatView.period, StatView.views).where(StatView.post_id == post.id)
        ).all()
    by_month: dict[date, int] = defaultdict(int)
    for day, _period, views in months:
        by_month[day.replace(day=1)] += int(views)
    return {
        "first": first,
        "last": last,
        "daily": daily,
        "total": sum(by_month.values()),
        "referrers": referrers,
        "months": sorted(by_month.items(), reverse=True),
    }


# --- CSV -------------------------------------------------------------------------------------


def csv_response(name: str, header: list[str], rows: Iterable[Iterable[Any]]) -> Response:
    """Give rows as a CSV download (cells that a spreadsheet would run are defused)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return Response(
        out.getvalue(),
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "Cache-Control": "private, no-store",
        },
    )


def dashboard_table(board: Dashboard, table: str) -> tuple[list[str], list[list[Any]]]:
    """Give one of /stats's tables as (header, rows); an unknown name is a 404."""
    if table == "days":
        return ["day", "views"], [[d.isoformat(), v] for d, v in board.daily]
    if table == "posts":
        return ["post", "slug", "views"], [
            [p["title"], p["slug"] or "", p["views"]] for p in board.posts
        ]
    if table == "referrers":
        return ["referrer", "views"], [list(r) for r in board.referrers]
    if board.site_wide:
        if table == "pages":
            return ["page", "views"], [[page_label(p), v] for p, v in board.pages]
        if table == "searches":
            return ["term", "searches", "results"], [list(s) for s in board.searches]
        if table == "subscribers":
            return ["reader", "subscribers"], [list(s) for s in board.subscribers]
    raise NotFound("There is no such table.")


# --- pages -----------------------------------------------------------------------------------


def chart_summary(daily: list[tuple[date, int]]) -> str:
    """Give a sentence saying what a daily chart shows (for its <desc> and for everyone)."""
    if not daily:
        return "No days."
    total = sum(v for _, v in daily)
    first, last = daily[0][0], daily[-1][0]
    span = f"from {first:%-d %b %Y} to {last:%-d %b %Y}"
    if total == 0:
        return f"No views {span}."
    best = max(daily, key=lambda item: (item[1], item[0]))
    return (
        f"{total} views {span}, {total / len(daily):.1f} a day on average;"
        f" the most on {best[0]:%-d %b %Y} ({best[1]})."
    )


@login_required
def stats_page(request: Request) -> str:
    """GET /stats: totals, a daily chart, top posts, referrers, searches, subscribers."""
    days = window_days(request)
    board = dashboard(get_db(request), current_user(request), days)
    summary = chart_summary(board.daily)
    chart = bar_chart(
        board.daily, title=f"Views per day, the last {days} days", summary=summary, ident="daily"
    )
    lines = {
        post["id"]: sparkline(post["trend"], label=f"Views per day of “{post['title']}”")
        for post in board.posts
    }
    return render_template(
        "stats/index.html",
        board=board,
        day_rows=[(day.isoformat(), day_label(day), views) for day, views in board.daily],
        chart=chart,
        summary=summary,
        lines=lines,
        windows=WINDOWS,
        page_label=page_label,
    )


@login_required
def stats_csv(request: Request, table: str) -> Response:
    """GET /stats/<table>.csv: one of /stats's tables as CSV."""
    days = window_days(request)
    board = dashboard(get_db(request), current_user(request), days)
    header, rows = dashboard_table(board, table)
    return csv_response(f"stats-{table}-{days}-days", header, rows)


def _post_for_stats(request: Request, slug: str) -> Post:
    from pyproject.blog.posts import get_post_or_404

    return get_post_or_404(request, slug, check_author=True)


@login_required
def post_stats(request: Request, slug: str) -> str:
    """GET /posts/<slug>/stats: one post's daily views and referrers (its author, admins)."""
    post = _post_for_stats(request, slug)
    numbers = post_numbers(post)
    summary = chart_summary(numbers["daily"])
    chart = bar_chart(
        numbers["daily"], title=f"Views per day of “{post.title}”", summary=summary, ident="post"
    )
    day_rows = [(day.isoformat(), day_label(day), views) for day, views in numbers["daily"]]
    return render_template(
        "stats/post.html",
        post=post,
        numbers=numbers,
        chart=chart,
        summary=summary,
        day_rows=day_rows,
    )


@login_required
def post_stats_csv(request: Request, slug: str, table: str) -> Response:
    """GET /posts/<slug>/stats/<table>.csv: days, months or referrers of one post."""
    post = _post_for_stats(request, slug)
    numbers = post_numbers(post)
    if table == "days":
        header, rows = ["day", "views"], [[d.isoformat(), v] for d, v in numbers["daily"]]
    elif table == "months":
        header, rows = ["month", "views"], [[f"{m:%Y-%m}", v] for m, v in numbers["months"]]
    elif table == "referrers":
        header, rows = ["referrer", "views"], [list(r) for r in numbers["referrers"]]
    else:
        raise NotFound("There is no such table.")
    return csv_response(f"{post.slug}-{table}", header, rows)


def privacy_facts(app: App) -> dict[str, Any]:
    """Give what the privacy page states, from the settings that decide it."""
    stats = get_statistics(app)
    return {
        "enabled": stats.enabled,
        "repeat_minutes": stats.repeat_seconds // 60,
        "search_min": stats.search_min,
        "daily_years": stats.daily_years,
        "zone": str(stats.zone),
    }


@reader_page
def privacy(request: Request) -> str:
    """GET /privacy: what the site counts and keeps, generated from its settings."""
    return render_template("stats/privacy.html", facts=privacy_facts(current_app()))


# --- the periodic job ------------------------------------------------------------------------


def _roll_up(connection: Connection, table: Any, key: tuple[str, ...], before: date) -> int:
    """Fold a table's day rows older than `before` into month rows; give how many went."""
    columns = [getattr(table.c, name) for name in key]
    rows = connection.execute(
        select(*columns, table.c.post_id, table.c.author_id, table.c.views).where(
            table.c.period == "day", table.c.day < before
        )
    ).all()
    if not rows:
        return 0
    months: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        values = dict(zip(key, row[: len(key)], strict=True))
        values["day"] = values["day"].replace(day=1)
        ident = tuple(values[name] for name in key)
        kept = months.setdefault(ident, [row.post_id, row.author_id, 0])
        kept[2] += int(row.views)
    connection.execute(delete(table).where(table.c.period == "day", table.c.day < before))
    for ident, (post_id, author_id, views) in months.items():
        where = [getattr(table.c, name) == value for name, value in zip(key, ident, strict=True)]
        existing = connection.execute(select(table.c.views).where(*where)).scalar()
        if existing is None:
            connection.execute(
                insert(table).values(
                    **dict(zip(key, ident, strict=True)),
                    period="month",
                    post_id=post_id,
                    author_id=author_id,
                    views=views,
                )
            )
        else:
            connection.execute(
                table.update().where(*where).values(views=int(existing) + views, period="month")
            )
    return len(rows)


def tidy(app: App, now: datetime | None = None) -> dict[str, int]:
    """Roll day rows older than the kept years into months; drop rare searches, old hashes
    and kept windows no page asks for any more; keep the site's standard windows.

    A month is rolled up once all its days are older than STATS_DAILY_YEARS. Rolling up
    changes past days' buckets: it makes every kept window stale, in the same transaction.
    """
    stats = get_statistics(app)
    now = now or utcnow()
    today = stats.day(now)
    oldest = today - timedelta(days=365 * stats.daily_years)
    before = oldest.replace(day=1)  # whole months only
    done: dict[str, int] = {}
    with stats.engine().begin() as connection:
        done["views"] = _roll_up(connection, StatView.__table__, ("day", "page"), before)
        done["referrers"] = _roll_up(
            connection, StatReferrer.__table__, ("day", "page", "referrer"), before
        )
        done["searches"] = connection.execute(
            delete(StatSearch).where(StatSearch.day < today, StatSearch.searches < stats.search_min)
        ).rowcount
        cutoff = int(now.timestamp()) - stats.repeat_seconds
        done["hashes"] = connection.execute(
            delete(StatRecentView).where(StatRecentView.seen_at <= cutoff)
        ).rowcount
        if done["views"] or done["referrers"]:
            connection.exec_driver_sql(_GENERATION_BUMP_SQL)
        # Every window a page reads ends yesterday (its past days); older ones, and those
        # of an older generation, are never read again.
        generation = connection.execute(
            select(StatGeneration.generation).where(StatGeneration.id == 1)
        ).scalar()
        done["windows_dropped"] = connection.execute(
            delete(StatWindow).where(
                or_(
                    StatWindow.last_day < today - timedelta(days=1),
                    StatWindow.generation < int(generation or 0),
                )
            )
        ).rowcount
    done["windows_made"] = keep_windows(app, now)
    return done


def keep_windows(app: App, now: datetime | None = None) -> int:
    """Sum the past days of the site-wide KEPT_WINDOWS into stats_windows where they are
    not kept at the current generation yet; give how many were summed.

    Run just after the site's midnight (and after any change to past days), so that the
    first visitor of a day does not pay for it.
    """
    stats = get_statistics(app)
    today = stats.day(now)
    end = today - timedelta(days=1)
    made = 0
    with stats.reading() as connection:
        for days in KEPT_WINDOWS:
            first = today - timedelta(days=days - 1)
            for kind in ("days", "posts", "pages", "referrers", "searches"):
                minimum = stats.search_min if kind == "searches" else 1
                made += stats._past_kept(connection, kind, first, end, Scope(None), minimum)[1]
    return made


@jobs.job(retries=2, periodic=crontab(minute="7"))
def tidy_statistics() -> dict[str, int]:
    """Hourly: roll up old day rows, drop rare searches of past days and expired hashes."""
    return tidy(jobs.current_app())


@jobs.job(retries=0, periodic=crontab(minute="*"))
def keep_statistics_windows() -> int:
    """Every minute: the site's standard windows' past days summed once a new day starts
    in the site's zone (whatever its offset from UTC), or once past days changed.

    When all are kept, this is one small read and lookups in the worker's memory."""
    return keep_windows(jobs.current_app())


def register(app: App) -> None:
    """Add the statistics pages (feed readers are noted by FeedReaders, which create_app
    puts in front of the page cache, inside the static, media and proxy layers)."""
    app.add_route("/stats", stats_page)
    app.add_route("/stats/<table>.csv", stats_csv)
    app.add_route("/posts/<slug:slug>/stats", post_stats)
    app.add_route("/posts/<slug:slug>/stats/<table>.csv", post_stats_csv)
    app.add_route("/privacy", privacy)
