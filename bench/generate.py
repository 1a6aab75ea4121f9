"""Generate realistic blogs for benchmarks: posts of real Markdown, tags, authors, revisions.

    .venv/bin/python bench/generate.py --posts 10000 --out bench/data/blog-10000.sqlite3
    .venv/bin/python bench/generate.py --posts 10000 --database-url postgresql+psycopg://...

Builds a database migrated with the real migrations (pyproject.blog.migrate.upgrade) holding
5 authors, a pool of 50 tags and N posts of 300 to 3,000 words of Markdown (headings,
code blocks, lists, links, quotes and paragraphs drawn from a Zipf-weighted word list),
1 to 5 tags each, dated over the last 5 years; about 3% are drafts, 1% scheduled and 1%
in the trash, as on a real blog. Every post carries what the editor would have stored
(rendered HTML, table of contents, summary, word count, reading time, tag_names) and one
Revision.

It is fast because it does the expensive work once: the Argon2 hash is made once for
all authors, Markdown is rendered once per DISTINCT body (a few hundred bodies, reused
under different titles), and rows go in with bulk inserts in batches. The search index
(FTS5 triggers on SQLite, the generated tsvector on PostgreSQL) fills itself as rows go in.

As a module: `generate(database_url, posts)` fills a database and gives a summary;
`sqlite_url(path)` and `count_posts(database_url)` help callers reuse what exists.
Generated SQLite files belong in bench/data/ (git-ignored).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, insert, inspect, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from pyproject.blog.auth import hash_password  # noqa: E402
from pyproject.blog.db import make_engine  # noqa: E402
from pyproject.blog.markup import Rendered, render_markdown  # noqa: E402
from pyproject.blog.migrate import downgrade, upgrade  # noqa: E402
from pyproject.blog.models import Post, PostView, Revision, SiteState, Tag, User, post_tags  # noqa: E402
from pyproject.blog.posts import tag_slug  # noqa: E402
from pyproject.blog.slugs import slugify  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
DISTINCT_BODIES = 200
BATCH_SIZE = 2_000
MIN_WORDS, MODE_WORDS, MAX_WORDS = 300, 800, 3_000
YEARS = 5
DRAFT_SHARE, SCHEDULED_SHARE, TRASHED_SHARE = 0.03, 0.01, 0.01
PASSWORD = "benchmark passphrase"

AUTHORS = [
    ("ada", "Ada Lovelace", "admin"),
    ("grace", "Grace Hopper", "author"),
    ("linus", "Linus Pauling", "author"),
    ("margaret", "Margaret Hamilton", "author"),
    ("alan", "Alan Kay", "author"),
]

TAG_POOL = [
    "Python", "Django", "Flask", "WSGI", "SQLite", "PostgreSQL", "Performance", "Testing",
    "Security", "Caching", "HTTP", "Web Design", "CSS", "JavaScript", "TypeScript", "Rust",
    "Go", "Linux", "Networking", "Databases", "Search", "Markdown", "Accessibility",
    "Open Source", "Career", "Teaching", "Books", "Travel", "Cooking", "Photography",
    "Music", "Gardening", "Cycling", "Running", "Hiking", "Productivity", "Writing",
    "Architecture", "DevOps", "Containers", "Cloud", "Machine Learning", "Statistics",
    "Data Visualisation", "Algorithms", "Compilers", "Type Systems", "Concurrency",
    "Embedded", "History",
]  # fmt: skip


def _words(text: str) -> list[str]:
    return text.split()


# The most frequent English words first: a Zipf weighting makes them common, as in prose.
COMMON_WORDS = _words(
    """
the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by not word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no
most people my over know water than call first who may down side been now find any new work
part take get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say help low line
differ turn cause much mean before move right boy old too same tell does set three want air
well also play small end put home read hand port large spell add even land here must big
high such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country
found answer school grow study still learn plant cover food sun four between state keep eye
never last let thought city tree cross farm hard start might story saw far sea draw left
late run while press close night real life few north open seem together next white children
begin got walk example ease paper group always music those both mark often letter until mile
river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young
ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half
rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast verb
sing listen six table travel less morning ten simple several vowel toward war lay against
pattern slow center love person money serve appear road map rain rule govern pull cold
notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood contain front
teach week final gave green oh quick develop ocean warm free minute strong special mind
behind clear tail produce fact street inch multiply nothing course stay wheel full force blue
object decide surface deep moon island foot system busy test record boat common gold
possible plane stead dry wonder laugh thousand ago ran check game shape equate hot miss
brought heat snow tire bring yes distant fill east paint language among
"""
)

TECH_WORDS = _words(
    """
server request response header cookie session cache query index table column row schema
migration transaction commit rollback lock thread process worker queue socket buffer stream
parser token lexer grammar compiler interpreter function method class module package import
return value variable argument parameter default exception error warning log trace debug
release version branch merge rebase patch diff review deploy build pipeline container image
volume network latency throughput bandwidth benchmark profile memory allocation garbage heap
stack pointer reference iterator generator coroutine async await callback promise event loop
handler middleware router template render escape sanitize validate encode decode hash salt
password secret token signature certificate proxy balancer replica shard partition backup
restore snapshot vacuum analyze planner optimizer statistics histogram cardinality selectivity
join nested hash merge sort aggregate window trigger constraint foreign primary unique
feed sitemap crawler robots canonical redirect status payload endpoint client browser
markdown heading paragraph list link emphasis footnote table highlight syntax theme layout
"""
)

SYLLABLES = _words(
    """
ka ri to mo na le su vi an or el ba de fi go hu ja ke lo mu ne pi qu ra se ti un ve wa xe yo
zu bra cle dri fro glu pla sto tre vo wi
"""
)

LANGUAGES = ["python", "javascript", "sql", "bash", "rust", "go"]


# --- words and text ----------------------------------------------------------------------


class Vocabulary:
    """Words drawn with Zipf weights: a few very common, a long tail of rare ones."""

    def __init__(self, rng: random.Random, rare_words: int = 4_000) -> None:
        rare: set[str] = set()
        while len(rare) < rare_words:
            rare.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
        tail = sorted(rare)
        rng.shuffle(tail)
        self.words = [*COMMON_WORDS, *TECH_WORDS, *tail]
        weights = [1 / (rank + 1) ** 1.07 for rank in range(len(self.words))]
        self.cum_weights = list(_accumulate(weights))
        self.tech = TECH_WORDS
        self.rare = tail
        self.rng = rng

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum_weights, k=count)

    def sentence(self, length: int | None = None) -> str:
        words = self.draw(length or self.rng.randint(6, 22))
        if self.rng.random() < 0.3:
            words[self.rng.randrange(len(words))] = f"`{self.rng.choice(self.tech)}`"
        if self.rng.random() < 0.15:
            i = self.rng.randrange(len(words))
            words[i] = f"**{words[i]}**"
        if self.rng.random() < 0.1:
            i = self.rng.randrange(len(words))
            words[i] = f"*{words[i]}*"
        return " ".join(words).capitalize() + self.rng.choice(".....?!")

    def title(self) -> str:
        # Titles mix a topic word with rarer words, so that title matches are selective.
        words = [self.rng.choice(self.tech), *self.rng.sample(self.rare, self.rng.randint(1, 3))]
        words += self.draw(self.rng.randint(1, 4))
        self.rng.shuffle(words)
        return " ".join(words).capitalize()


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


def count_words(markdown_text: str) -> int:
    return len(markdown_text.split())


def markdown_body(vocab: Vocabulary, target_words: int) -> str:
    """Give a post of about `target_words` words of Markdown, in the shapes authors write."""
    rng = vocab.rng
    blocks: list[str] = [paragraph(vocab)]
    words = count_words(blocks[0])
    while words < target_words:
        roll = rng.random()
        if roll < 0.12:
            block = f"{'#' * rng.choice((2, 2, 2, 3))} {vocab.title()}"
        elif roll < 0.22:
            block = code_block(vocab)
        elif roll < 0.32:
            block = bullet_list(vocab)
        elif roll < 0.36:
            block = "> " + vocab.sentence()
        else:
            block = paragraph(vocab)
        blocks.append(block)
        words += count_words(block)
    return "\n\n".join(blocks) + "\n"


def paragraph(vocab: Vocabulary) -> str:
    rng = vocab.rng
    sentences = [vocab.sentence() for _ in range(rng.randint(2, 7))]
    if rng.random() < 0.35:
        i = rng.randrange(len(sentences))
        label = " ".join(vocab.draw(rng.randint(1, 3)))
        path = "/".join(vocab.draw(2))
        sentences[i] += f" See [{label}](https://example.{rng.choice(('com', 'org'))}/{path})."
    return " ".join(sentences)


def bullet_list(vocab: Vocabulary) -> str:
    rng = vocab.rng
    marker = rng.choice(("-", "*", "1."))
    return "\n".join(
        f"{marker} {vocab.sentence(rng.randint(3, 12))}" for _ in range(rng.randint(3, 7))
    )


def code_block(vocab: Vocabulary) -> str:
    rng = vocab.rng
    language = rng.choice(LANGUAGES)
    lines = []
    for _ in range(rng.randint(3, 14)):
        name, arg, other = (rng.choice(vocab.tech) for _ in range(3))
        lines.append(
            rng.choice(
                (
                    f"{name} = {other}({arg}, {rng.randint(0, 999)})",
                    f"if {name} > {rng.randint(1, 99)}:",
                    f"    return {other}.{arg}()",
                    f'print("{name} {other}", {arg})',
                    f"for {arg} in {name}s:",
                    f"SELECT {name}, {other} FROM {arg}s WHERE id = {rng.randint(1, 500)};",
                )
            )
        )
    return f"```{language}\n" + "\n".join(lines) + "\n```"


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    markdown: str
    rendered: Rendered


def make_bodies(vocab: Vocabulary, count: int) -> list[Body]:
    """Give `count` distinct bodies, each rendered once."""
    rng = vocab.rng
    bodies = []
    for _ in range(count):
        target = int(rng.triangular(MIN_WORDS, MAX_WORDS, MODE_WORDS))
        markdown_text = markdown_body(vocab, target)
        bodies.append(Body(markdown_text, render_markdown(markdown_text)))
    return bodies


def user_rows(now: datetime) -> list[dict[str, Any]]:
    password_hash = hash_password(PASSWORD)  # once: Argon2 is slow on purpose
    return [
        {
            "id": i,
            "username": username,
            "email": f"{username}@example.com",
            "display_name": name,
            "bio": f"{name} writes about software and everything around it.",
            "password_hash": password_hash,
            "role": role,
            "is_active": True,
            "created_at": now - timedelta(days=YEARS * 365 + 30),
            "updated_at": now - timedelta(days=YEARS * 365 + 30),
        }
        for i, (username, name, role) in enumerate(AUTHORS, start=1)
    ]


def tag_rows() -> list[dict[str, Any]]:
    return [
        {"id": i, "name": name, "slug": tag_slug(name)} for i, name in enumerate(TAG_POOL, start=1)
    ]


def post_batches(
    vocab: Vocabulary, bodies: list[Body], posts: int, now: datetime, batch_size: int
) -> Iterator[tuple[list[dict[str, Any]], ...]]:
    """Give (posts, revisions, post_tags, post_views) rows, batch by batch, oldest first."""
    rng = vocab.rng
    span = YEARS * 365 * 86_400
    start = now - timedelta(seconds=span)
    # Sorted offsets: ids grow with time, as on a real blog.
    offsets = sorted(rng.random() * span for _ in range(posts))
    post_rows: list[dict[str, Any]] = []
    revision_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    view_rows: list[dict[str, Any]] = []
    for post_id, offset in enumerate(offsets, start=1):
        created = start + timedelta(seconds=offset)
        body = bodies[rng.randrange(len(bodies))]
        title = vocab.title()[:200]
        tag_ids = rng.sample(range(1, len(TAG_POOL) + 1), rng.randint(1, 5))
        names = [TAG_POOL[i - 1] for i in tag_ids]
        roll = rng.random()
        status, published, deleted = "published", created + timedelta(minutes=5), None
        if roll < DRAFT_SHARE:
            status, published = "draft", None
        elif roll < DRAFT_SHARE + SCHEDULED_SHARE:
            published = now + timedelta(hours=rng.uniform(1, 24 * 30))
        elif roll < DRAFT_SHARE + SCHEDULED_SHARE + TRASHED_SHARE:
            deleted = min(now, created + timedelta(days=rng.uniform(1, 60)))
        updated = created + timedelta(minutes=5)
        if published is not None and published < now and rng.random() < 0.2:
            updated = min(now, published + timedelta(days=rng.expovariate(1 / 30)))
        author_id = rng.randint(1, len(AUTHORS))
        rendered = body.rendered
        post_rows.append(
            {
                "id": post_id,
                "author_id": author_id,
                "title": title,
                "slug": f"{slugify(title, 120) or 'post'}-{post_id}",
                "body_md": body.markdown,
                "body_html": rendered.html,
                "toc_html": rendered.toc_html,
                "summary": rendered.summary,
                "summary_is_custom": False,
                "status": status,
                "word_count": rendered.word_count,
                "reading_minutes": rendered.reading_minutes,
                "render_version": rendered.version,
                "created_at": created,
                "updated_at": updated,
                "published_at": published,
                "revision": 1,
                "tag_names": " ".join(names),
                "deleted_at": deleted,
            }
        )
        revision_rows.append(
            {
                "post_id": post_id,
                "number": 1,
                "kind": "save",
                "title": title,
                "body_md": body.markdown,
                "summary": "",
                "tags": ", ".join(names),
                "author_id": author_id,
                "words_changed": rendered.word_count,
                "created_at": updated,
            }
        )
        link_rows.extend({"post_id": post_id, "tag_id": tag_id} for tag_id in tag_ids)
        if published is not None:
            view_rows.append({"post_id": post_id, "views": int(rng.paretovariate(1.2) * 10)})
        if len(post_rows) >= batch_size:
            yield post_rows, revision_rows, link_rows, view_rows
            post_rows, revision_rows, link_rows, view_rows = [], [], [], []
    if post_rows:
        yield post_rows, revision_rows, link_rows, view_rows


# --- the database ------------------------------------------------------------------------


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def count_posts(database_url: str) -> int | None:
    """Give how many posts a database holds, or None if it has none (or no posts table)."""
    if database_url.startswith("sqlite:///") and not Path(database_url[10:]).exists():
        return None
    engine = make_engine(database_url)
    try:
        if "posts" not in inspect(engine).get_table_names():
            return None
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM posts")).scalar_one()
    finally:
        engine.dispose()


def prepare_database(database_url: str, *, force: bool) -> Engine:
    """Give an engine on a migrated, empty database (`force` clears ours first)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if path.exists():
            if not force:
                raise SystemExit(f"{path} exists: pass --force to replace it")
            # The view-count store beside it (pyproject.blog.db.ViewCounts) goes too: it carries
            # the new database's post_views over on first use.
            for suffix in ("", "-wal", "-shm", "-views", "-views-wal", "-views-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def fast_load(dbapi_connection: Any, _record: Any) -> None:
            # A benchmark database can be rebuilt: trade durability for speed while loading
            # (no journal, no fsync: each page is written once). WAL comes back at the end.
            dbapi_connection.execute("PRAGMA journal_mode=OFF")
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA cache_size=-262144")

    if force and engine.dialect.name != "sqlite":
        downgrade(engine, "base")
    upgrade(engine)
    with engine.connect() as connection:
        if connection.execute(text("SELECT count(*) FROM users")).scalar_one():
            raise SystemExit("the database already has users: pass --force to clear it first")
    return engine


# The FTS5 columns and what fills them, as the triggers of migrations/versions/0003 do.
FTS_FILL = (
    "INSERT INTO posts_fts (rowid, title, summary, body, tags) "
    "SELECT id, title, summary, body_md, tag_names FROM posts"
)


@contextmanager
def search_index_deferred(session: Session) -> Iterator[None]:
    """Keep the search index out of the way while rows go in, then build it in one pass.

    Indexing row by row costs twice what one bulk pass does. SQLite: the triggers on posts
    are dropped and put back from their own SQL in sqlite_master, and posts_fts is filled
    from posts in one statement. PostgreSQL: the tsvector column is computed per row
    anyway, but the GIN index is dropped and made again from its own definition.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        saved = session.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'posts'"
            )
        ).all()
        drop = "DROP TRIGGER {}"
    else:
        saved = session.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'posts' AND indexdef LIKE '%USING gin%'"
            )
        ).all()
        drop = "DROP INDEX {}"
    for name, _definition in saved:
        session.execute(text(drop.format(name)))
    session.commit()
    yield
    if sqlite:
        session.execute(text(FTS_FILL))
        indexed = session.execute(text("SELECT count(*) FROM posts_fts")).scalar_one()
        total = session.execute(text("SELECT count(*) FROM posts")).scalar_one()
        assert indexed == total, f"posts_fts holds {indexed} rows for {total} posts"
    for _name, definition in saved:
        session.execute(text(definition))
    session.commit()


def generate(
    database_url: str,
    posts: int,
    *,
    seed: int = 2026,
    distinct_bodies: int = DISTINCT_BODIES,
    batch_size: int = BATCH_SIZE,
    force: bool = False,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Fill the database at `database_url` with a blog of `posts` posts; give a summary."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    engine = prepare_database(database_url, force=force)
    sqlite = engine.dialect.name == "sqlite"
    vocab = Vocabulary(rng)
    bodies = make_bodies(vocab, min(distinct_bodies, max(posts, 1)))
    rendered_at = time.perf_counter()
    say(f"rendered {len(bodies)} distinct bodies in {rendered_at - started:.1f}s")
    with Session(engine) as session:
        session.execute(insert(User), user_rows(now))
        session.execute(insert(Tag), tag_rows())
        session.commit()
        with search_index_deferred(session):
            done = 0
            batches = post_batches(vocab, bodies, posts, now, batch_size)
            for post_rows, revision_rows, link_rows, view_rows in batches:
                session.execute(insert(Post), post_rows)
                session.execute(insert(Revision), revision_rows)
                session.execute(insert(post_tags), link_rows)
                if view_rows:
                    session.execute(insert(PostView), view_rows)
                session.commit()
                done += len(post_rows)
                if done % (batch_size * 10) == 0 or done == posts:
                    say(f"{done:,} posts in {time.perf_counter() - started:.1f}s")
        say(f"search index built at {time.perf_counter() - started:.1f}s")
        session.execute(SiteState.__table__.update().values(version=2, changed_at=now))
        if not sqlite:
            for table in ("users", "tags", "posts", "revisions"):
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table}), 1))"
                    )
                )
        session.commit()
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    engine.dispose()
    if sqlite:
        # What the app's connections would set anyway: the file is left as they expect it.
        with make_engine(database_url).connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    seconds = time.perf_counter() - started
    say(f"done: {posts:,} posts in {seconds:.1f}s")
    return {
        "database_url": database_url,
        "posts": posts,
        "distinct_bodies": len(bodies),
        "mean_words": round(sum(b.rendered.word_count for b in bodies) / max(len(bodies), 1)),
        "seed": seed,
        "seconds": round(seconds, 2),
        "render_seconds": round(rendered_at - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, required=True, help="how many posts to make")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="SQLite file to create (under bench/data/)")
    target.add_argument("--database-url", help="a database to fill instead (PostgreSQL)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--distinct-bodies", type=int, default=DISTINCT_BODIES)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--force", action="store_true", help="replace what is there")
    args = parser.parse_args(argv)
    if args.posts < 0:
        parser.error("--posts must be 0 or more")
    url = sqlite_url(args.out) if args.out else args.database_url
    generate(
        url,
        args.posts,
        seed=args.seed,
        distinct_bodies=args.distinct_bodies,
        batch_size=args.batch_size,
        force=args.force,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
