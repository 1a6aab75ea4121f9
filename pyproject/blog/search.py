"""Full-text search over published posts: one interface, an engine per database.

SQLite uses the FTS5 table the migrations keep in sync by triggers, ranked with bm25;
PostgreSQL uses the weighted tsvector column with its GIN index and
websearch_to_tsquery. Either way the visitor's words are never handed to the database
as query syntax they could break: no query can cause an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from markupsafe import Markup
from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.orm import Session, selectinload

from pyproject.blog import stats
from pyproject.blog.caching import reader_page
from pyproject.blog.db import get_db
from pyproject.blog.models import Post, UTCDateTime, utcnow, visible_sql
from pyproject.blog.posts import Page, page_number
from pyproject.lib import App, Request, Response, render_template

PER_PAGE = 10
QUERY_MAX = 1000
MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Markers the database puts around matched words; they cannot occur in stored text
# because the form layer refuses control characters.
START, STOP = "\x02", "\x03"


@dataclass
class Hit:
    post: Post
    snippet: Markup


def clean_query(raw: str) -> str:
    """Give the query as the visitor meant it: control characters gone, length capped."""
    return " ".join(_CONTROL.sub(" ", raw[:QUERY_MAX]).split())


def terms(query: str) -> list[str]:
    """Give the words of a query (letters and digits of any script), at most MAX_TERMS."""
    return _WORD.findall(query)[:MAX_TERMS]


def highlight(snippet: str) -> Markup:
    """Give a snippet escaped, with the database's match markers turned into <mark>."""
    html = escape(snippet.replace(START, "\x00s").replace(STOP, "\x00e"))
    html = html.replace("\x00s", "<mark>").replace("\x00e", "</mark>")
    # Escaped above; the only markup is our own <mark> tags.
    return Markup(html)  # noqa: S704  # nosec B704


def search(db: Session, query: str, number: int = 1, per_page: int = PER_PAGE) -> Page:
    """Give page `number` of the published posts matching `query`, best first, as Hits."""
    query = clean_query(query)
    words = terms(query)
    if not words:
        return Page([], number, False, query)
    engine = _postgres_search if db.get_bind().dialect.name == "postgresql" else _sqlite_search
    rows = engine(db, query, words, per_page + 1, (number - 1) * per_page)
    posts = {
        post.id: post
        for post in db.scalars(
            select(Post).options(selectinload(Post.tags)).where(Post.id.in_([r[0] for r in rows]))
        )
    }
    hits = [Hit(posts[pid], highlight(snippet or "")) for pid, snippet in rows if pid in posts]
    return Page(hits[:per_page], number, len(rows) > per_page, query)


def _run(db: Session, statement: TextClause, params: dict[str, object]) -> list[tuple[int, str]]:
    return [(row.id, row.snippet) for row in db.execute(statement, {"now": utcnow(), **params})]


# bm25's column weights, in the index's order (title, summary, body, tags): a word in the
# title counts as much as a hundred in the body, so a title match stays on top.
# Candidates ranked inside the index before the visibility check (almost every indexed
# post is visible): ranking is cheap there; joining every match to posts is not.
_CANDIDATE_MARGIN = 100
# A word found in most posts ("server" on a blog about servers) would have every match
# scored before the first page shows: its results are ranked among its newest matches
# (by id) only, as many as this. Narrower queries, and pages past the window, rank all.
SEARCH_WINDOW = 5000
_SQLITE_WINDOW_FLOOR = text(
    "SELECT rowid FROM posts_fts WHERE posts_fts MATCH :match"
    " ORDER BY rowid DESC LIMIT 1 OFFSET :skip"
)
_SQLITE_RANKED = text(
    f"""
    WITH ranked AS (
        SELECT rowid AS id, bm25(posts_fts, 100.0, 1.0, 1.0, 10.0) AS score
        FROM posts_fts WHERE posts_fts MATCH :match AND rowid >= :floor
        ORDER BY score LIMIT :cap
    )
    SELECT ranked.id AS id, '' AS snippet FROM ranked JOIN posts ON posts.id = ranked.id
    WHERE {visible_sql("sqlite")}
    ORDER BY ranked.score, posts.published_at DESC
    LIMIT :limit OFFSET :offset
    """  # noqa: S608  # nosec B608 - only the rule of models.visible is put in
).bindparams(bindparam("now", type_=UTCDateTime()))
_SNIPPETS = text(
    "SELECT rowid, snippet(posts_fts, -1, :start, :stop, '…', 16) FROM posts_fts "
    "WHERE posts_fts MATCH :match AND rowid IN :ids"
).bindparams(bindparam("ids", expanding=True), start=START, stop=STOP)


def _sqlite_search(
    db: Session, query: str, words: list[str], limit: int, offset: int
) -> list[tuple[int, str]]:
    # Each word quoted as an FTS5 string: operators, quotes and colons lose their meaning.
    match = " ".join(f'"{w}"' for w in words)
    cap = offset + limit + _CANDIDATE_MARGIN
    params = {"match": match, "limit": limit, "offset": offset}
    floor = 0
    if cap <= SEARCH_WINDOW:
        skip = {"match": match, "skip": SEARCH_WINDOW - 1}
        floor = db.execute(_SQLITE_WINDOW_FLOOR, skip).scalar() or 0
    rows = _run(db, _SQLITE_RANKED, {**params, "cap": cap, "floor": floor})
    if len(rows) < limit:
        # Too few candidates were visible (many drafts match): rank them all.
        rows = _run(db, _SQLITE_RANKED, {**params, "cap": -1, "floor": 0})
    if not rows:
        return []
    snippets = dict(db.execute(_SNIPPETS, {"match": match, "ids": [pid for pid, _ in rows]}).all())
    return [(pid, snippets.get(pid, "")) for pid, _ in rows]


# PostgreSQL ranks, in two tiers, without reading a body's large vector to rank it:
# first the posts whose head (title, tags, summary: the small `search_head` vector, with
# a GIN index of its own) matches, by ts_rank_cd; then the posts that match in the body
# only, newest first (migration 0007). The headline (costly: it re-parses the text) is
# made for the shown page's rows only.
_PG_QUERY = "websearch_to_tsquery('english', :q) AS q"
_PG_HEAD = text(
    f"""
    SELECT posts.id FROM posts, {_PG_QUERY}
    WHERE posts.search_head @@ q AND {visible_sql("postgresql")}
    ORDER BY ts_rank_cd(ARRAY[0, 0, 0.05, 1.0]::float4[], posts.search_head, q) DESC,
             posts.published_at DESC, posts.id DESC
    LIMIT :limit OFFSET :offset
    """  # noqa: S608  # nosec B608 - only the rule of models.visible is put in
).bindparams(bindparam("now", type_=UTCDateTime()))
_PG_HEAD_COUNT = text(
    f"""
    SELECT count(*) FROM posts, {_PG_QUERY}
    WHERE posts.search_head @@ q AND {visible_sql("postgresql")}
    """  # noqa: S608  # nosec B608 - only the rule of models.visible is put in
).bindparams(bindparam("now", type_=UTCDateTime()))
# Body-only matches, newest first, looked for among the newest posts first: a common
# word is found there after reading a few vectors; a rare one is not, and is then taken
# from the GIN index (MATERIALIZED keeps the planner from reading every vector in date
# order instead).
_PG_BODY_RECENT = text(
    f"""
    SELECT recent.id FROM (
        SELECT posts.id, posts.published_at, posts.search_vector, posts.search_head
        FROM posts WHERE {visible_sql("postgresql")}
        ORDER BY posts.published_at DESC, posts.id DESC LIMIT :scan
    ) AS recent, {_PG_QUERY}
    WHERE recent.search_vector @@ q AND NOT recent.search_head @@ q
    ORDER BY recent.published_at DESC, recent.id DESC
    LIMIT :limit OFFSET :offset
    """  # noqa: S608  # nosec B608 - only the rule of models.visible is put in
).bindparams(bindparam("now", type_=UTCDateTime()))
_PG_BODY_ALL = text(
    f"""
    WITH found AS MATERIALIZED (
        SELECT posts.id, posts.published_at FROM posts, {_PG_QUERY}
        WHERE posts.search_vector @@ q AND NOT posts.search_head @@ q
          AND {visible_sql("postgresql")}
    )
    SELECT id FROM found ORDER BY published_at DESC, id DESC LIMIT :limit OFFSET :offset
    """  # noqa: S608  # nosec B608 - only the rule of models.visible is put in
).bindparams(bindparam("now", type_=UTCDateTime()))
RECENT_SCAN = 2000  # the newest posts looked through before asking the index


_PG_HEADLINES = text(
    f"""
    SELECT posts.id,
           ts_headline('english', posts.summary || ' ' || left(posts.body_md, 4000), q,
                       'StartSel=' || :start || ', StopSel=' || :stop
                       || ', MaxWords=30, MinWords=12')
    FROM posts, {_PG_QUERY} WHERE posts.id IN :ids
    """  # noqa: S608  # nosec B608 - constants only
).bindparams(bindparam("ids", expanding=True), start=START, stop=STOP)


def _postgres_search(
    db: Session, query: str, words: list[str], limit: int, offset: int
) -> list[tuple[int, str]]:
    # websearch_to_tsquery accepts any text; a query of operators alone becomes its words.
    q = query if any(c.isalnum() for c in query) else " ".join(words)
    now = utcnow()
    params = {"q": q, "now": now, "limit": limit, "offset": offset}
    ids = list(db.execute(_PG_HEAD, params).scalars())
    if len(ids) < limit:
        # Past the head matches: the body-only ones continue the list where they end.
        heads = offset + len(ids) if ids else db.execute(_PG_HEAD_COUNT, params).scalar_one()
        rest = {**params, "limit": limit - len(ids), "offset": max(0, offset - heads)}
        body = list(db.execute(_PG_BODY_RECENT, {**rest, "scan": RECENT_SCAN}).scalars())
        if len(body) < rest["limit"]:
            body = list(db.execute(_PG_BODY_ALL, rest).scalars())
        ids += body
    if not ids:
        return []
    headlines = dict(db.execute(_PG_HEADLINES, {"q": q, "ids": ids}).all())
    return [(post_id, headlines.get(post_id, "")) for post_id in ids]


@reader_page
def search_page(request: Request) -> Response:
    """GET /search?q=...: ranked results with highlighted snippets, 10 a page.

    A first page's search is counted in the statistics, with whether it found anything.
    """
    raw = request.args.get("q", "")
    number = page_number(request)
    results = search(get_db(request), raw, number)
    body = render_template("search/results.html", results=results)
    term = stats.search_term(raw) if number == 1 else ""
    found = (term, len(results.items)) if term else None
    return stats.counted(request, body, "search", key=f"search:{term}", search=found)


def register(app: App) -> None:
    app.add_route("/search", search_page)
