"""Storage: the schema comes from the migrations, SQLite is tuned for workers, times are UTC."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, select, text

import pyproject.blog.db
from blog.conftest import (
    AUTHOR,
    Cast,
    field_error,
    form_of,
    get_post,
    make_blog_app,
    make_cast,
    slug_of,
    views_of,
    write_post,
)
from pyproject.blog.db import ViewCounts, get_database, get_view_counts
from pyproject.blog.migrate import current_revision, downgrade, head_revision, upgrade
from pyproject.blog.models import Base, Post, SessionRecord, User, utcnow
from pyproject.lib import App

TABLES = {"users", "posts", "tags", "post_tags", "sessions", "login_attempts"}


def table_names(app: App) -> set[str]:
    return set(inspect(get_database(app).engine).get_table_names())


# --- migrations --------------------------------------------------------------------------


def test_migrations_go_up_to_head_and_down_to_base(any_db_app: App) -> None:
    engine = get_database(any_db_app).engine
    downgrade(engine, "base")
    assert table_names(any_db_app) <= {"alembic_version"}
    assert current_revision(engine) is None

    upgrade(engine, "head")
    assert table_names(any_db_app) >= TABLES
    assert current_revision(engine) == head_revision(engine)

    downgrade(engine, "base")
    assert table_names(any_db_app) <= {"alembic_version"}
    assert current_revision(engine) is None


def test_view_counts_keep_their_numbers_across_migration_0005(any_db_cast: Cast) -> None:
    """0005 moved view counts to post_views; its upgrade and downgrade carry the numbers."""
    cast = any_db_cast
    slug = slug_of(write_post(cast.author, title="Counted"))
    unread = slug_of(write_post(cast.author, title="Unread"))
    engine = get_database(cast.app).engine
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO post_views (post_id, views) SELECT id, 3 FROM posts WHERE slug = :s"),
            {"s": slug},
        )
    downgrade(engine, "0004")
    with engine.connect() as connection:
        counts = dict(connection.execute(text("SELECT slug, view_count FROM posts")).all())
    assert counts == {slug: 3, unread: 0}
    upgrade(engine, "head")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT p.slug, v.views FROM post_views v JOIN posts p ON p.id = v.post_id")
        ).all()
    assert dict(rows) == {slug: 3}


def test_sqlite_counts_carry_over_from_the_site_table_once(cast: Cast) -> None:
    """Counts a site kept in its own post_views table join the counter store on first use."""
    slug = slug_of(write_post(cast.author, title="Read before the store"))
    engine = get_database(cast.app).engine
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO post_views (post_id, views) SELECT id, 7 FROM posts WHERE slug = :s"),
            {"s": slug},
        )
    store = ViewCounts(get_database(cast.app))
    store.path = f"{store.sqlite_path}-views-fresh"  # a store that has never been used
    try:
        post_id = get_post(cast.app, slug).id
        store.count(post_id)
        assert store.views([post_id]) == {post_id: 8}
        store.close()
        store.count(post_id)  # a new connection: nothing is carried over a second time
        assert store.views([post_id]) == {post_id: 9}
    finally:
        store.close()


# The full-text index is database-specific and lives only in the migrations, by design.
SEARCH_OBJECTS = (
    "posts_fts",
    "search_vector",
    "search_head",
    "ix_posts_search_vector",
    "ix_posts_search_head",
)


def outside_the_search_index(obj, name, type_, reflected, compare_to) -> bool:
    return not (name or "").startswith(SEARCH_OBJECTS)


def is_cover_reference(difference: tuple) -> bool:
    """Whether a difference is about the reference of posts.cover_media_id."""
    kind, constraint = difference[0], difference[1]
    return (
        kind in ("add_fk", "remove_fk")
        and constraint.table.name == "posts"
        and [column.name for column in constraint.columns] == ["cover_media_id"]
    )


def test_migrated_schema_matches_the_models(any_db_app: App) -> None:
    with get_database(any_db_app).engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": outside_the_search_index},
        )
        differences = compare_metadata(context, Base.metadata)
        if connection.dialect.name == "sqlite":
            # 0014 adds posts.cover_media_id in place on SQLite (a rebuild would drop the
            # search triggers), so its reference is a column clause, whose ON DELETE
            # SQLAlchemy's reflection does not read: it reports the rule as missing.
            # SQLite's own list of the table's references says it is there.
            differences = [d for d in differences if not is_cover_reference(d)]
            references = connection.exec_driver_sql("PRAGMA foreign_key_list(posts)").all()
            cover = [row for row in references if row[3] == "cover_media_id"]
            assert [(row[2], row[4], row[6]) for row in cover] == [("media", "id", "SET NULL")]
        assert differences == []


def test_timestamp_columns_are_timezone_aware_in_the_schema(any_db_app: App) -> None:
    engine = get_database(any_db_app).engine
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no time zone column type (see test_sqlite_stores_utc_wall_time)")
    columns = inspect(engine).get_columns("posts")
    for column in columns:
        if column["name"] in ("created_at", "updated_at", "published_at"):
            assert getattr(column["type"], "timezone", False), column


# --- SQLite ------------------------------------------------------------------------------


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(app: App) -> None:
    with get_database(app).engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_sqlite_foreign_keys_are_enforced(app: App) -> None:
    database = get_database(app)
    with pytest.raises(Exception, match="FOREIGN KEY"), database.write() as db:
        db.add(
            Post(
                author_id=999,
                title="orphan",
                slug="orphan",
                body_md="x",
                body_html="<p>x</p>",
            )
        )


class StatementLog:
    """Statements the engine ran, grouped into transactions per DB-API connection."""

    def __init__(self, app: App) -> None:
        self.engine = get_database(app).engine
        self.transactions: list[list[str]] = []
        self._open: dict[int, list[str]] = defaultdict(list)

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        key = id(conn.connection.dbapi_connection)
        if statement.lstrip().upper().startswith("BEGIN"):
            self._open[key] = [statement.strip()]
            self.transactions.append(self._open[key])
        else:
            self._open[key].append(statement.strip())

    def writing(self) -> list[list[str]]:
        """Give the transactions that inserted, updated or deleted anything."""
        verbs = ("INSERT", "UPDATE", "DELETE")
        return [t for t in self.transactions if any(s.upper().startswith(verbs) for s in t[1:])]


def test_a_post_request_writes_in_a_transaction_begun_with_begin_immediate(cast: Cast) -> None:
    with StatementLog(cast.app) as log:
        response = write_post(cast.author, title="Locked in", tags="sqlite")
    assert response.status_code == 303
    writes = log.writing()
    assert any(
        any(s.startswith("INSERT INTO posts") for s in transaction) for transaction in writes
    )
    for transaction in writes:
        assert transaction[0] == "BEGIN IMMEDIATE", transaction


def test_a_post_request_s_own_transaction_starts_with_begin_immediate(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author))
    values = form_of(cast.author.get(f"/posts/{slug}/edit"), "#post-form")
    values.update(title="Changed")
    with StatementLog(cast.app) as log:
        response = cast.author.post(f"/posts/{slug}/edit", data=values)
    assert response.status_code == 303
    saving = [t for t in log.transactions if any(s.startswith("UPDATE posts SET") for s in t)]
    assert saving
    assert all(transaction[0] == "BEGIN IMMEDIATE" for transaction in saving)


def test_counting_a_view_writes_with_begin_immediate_while_reads_do_not(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author))
    counter = get_view_counts(cast.app)
    counted: list[str] = []
    counter.close()  # the next count opens a connection that reports its statements
    counter.trace = counted.append
    try:
        with StatementLog(cast.app) as log:
            assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    finally:
        counter.close()
        counter.trace = None
    # Counts live in a database of their own, and counters queue on a lock file beside it.
    database_file = get_database(cast.app).engine.url.database
    assert Path(f"{database_file}-views").exists()
    assert Path(f"{database_file}-views.lock").exists()
    # The count is its own write transaction on the counter's connection, begun IMMEDIATE.
    # (A new connection first carries over older counts, once: the count is the last write.)
    writes = counted[len(counted) - 1 - counted[::-1].index("BEGIN IMMEDIATE") :]
    assert writes[1].startswith("INSERT INTO post_views (post_id, views) VALUES (")
    assert writes[2:] == ["COMMIT"]
    # The page itself only read, and the site's database was never written.
    assert not log.writing()
    assert log.transactions and all(t[0] == "BEGIN" for t in log.transactions)


def test_every_request_gives_its_connection_back(cast: Cast) -> None:
    pool = get_database(cast.app).engine.pool
    slug = slug_of(write_post(cast.author))
    requests = [
        lambda: cast.anonymous.get("/"),
        lambda: cast.anonymous.get(f"/posts/{slug}"),
        lambda: cast.anonymous.get("/posts/nothing-here"),  # 404
        lambda: cast.other.get(f"/posts/{slug}/edit"),  # 403
        lambda: write_post(cast.author, tags="x" * 41),  # 422, nothing committed
        lambda: cast.author.get("/drafts"),
    ]
    for send in requests:
        send()
        assert pool.checkedout() == 0


# --- time --------------------------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(any_db_cast: Cast) -> None:
    before = utcnow()
    slug = slug_of(write_post(any_db_cast.author, title="Timely"))
    after = utcnow()
    post = get_post(any_db_cast.app, slug)
    for value in (post.created_at, post.updated_at, post.published_at):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= value <= after + timedelta(seconds=1)
    with get_database(any_db_cast.app).read() as db:
        user = db.scalar(select(User).where(User.username == AUTHOR.username))
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset() == timedelta(0)


def test_sqlite_stores_utc_wall_time(app: App) -> None:
    moment = datetime(2024, 3, 1, 12, 30, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    database = get_database(app)
    with database.write() as db:
        db.add(User(username="tz", email="tz@example.com", password_hash="x", created_at=moment))
    with database.read() as db:
        raw = db.execute(text("SELECT created_at FROM users WHERE username = 'tz'")).scalar()
        stored = db.scalar(select(User.created_at).where(User.username == "tz"))
    assert str(raw).startswith("2024-03-01 12:30:00")
    assert stored == moment and stored.tzinfo is not None


def test_naive_datetimes_are_refused(app: App) -> None:
    database = get_database(app)
    with pytest.raises(Exception, match="naive"), database.write() as db:
        db.add(
            User(
                username="naive",
                email="naive@example.com",
                password_hash="x",
                created_at=datetime(2024, 1, 1),  # naive: the point of the test
            )
        )
        db.flush()


# --- view counting -----------------------------------------------------------------------


def test_concurrent_views_are_all_counted(any_db_cast: Cast) -> None:
    app = any_db_cast.app
    slug = slug_of(write_post(any_db_cast.author, title="Busy post"))
    readers = [app.test_client(), app.test_client()]
    start = threading.Barrier(len(readers))
    statuses: list[list[int]] = [[] for _ in readers]

    def read(index: int) -> None:
        start.wait()
        for _ in range(50):
            statuses[index].append(readers[index].get(f"/posts/{slug}").status_code)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(readers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(status == 200 for batch in statuses for status in batch)
    assert sum(len(batch) for batch in statuses) == 100
    assert views_of(app, slug) == 100


def test_a_failed_save_keeps_nothing(cast: Cast) -> None:
    response = write_post(cast.author, title="Half", body="")
    assert response.status_code == 422
    assert field_error(response, "body")
    with get_database(cast.app).read() as db:
        assert db.scalar(select(Post.id)) is None


# --- a request never waits for its own lock ----------------------------------------------


def age_sessions(app: App, hours: int) -> None:
    """Make every stored session look as if it was last refreshed `hours` ago."""
    with get_database(app).write() as db:
        for record in db.scalars(select(SessionRecord)):
            data = json.loads(record.data)
            data["_refreshed"] = int(time.time()) - hours * 3600
            record.data = json.dumps(data)


@pytest.mark.parametrize("situation", ["session-due-for-refresh", "flash-pending"])
def test_a_post_that_saves_nothing_does_not_lock_itself_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, situation: str
) -> None:
    # The same wait, shortened from 30 s so that the failure shows quickly.
    monkeypatch.setattr(pyproject.blog.db, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    app = make_blog_app(tmp_path)
    try:
        cast = make_cast(app)
        values = form_of(cast.author.get("/posts/new"), "#post-form")
        values.update(title="Typed last night", body="Words I *must not* lose.")
        if situation == "session-due-for-refresh":
            age_sessions(app, hours=25)  # the editor stayed open overnight
            response = cast.author.post("/posts/preview", data=values)
            assert response.status_code == 200
        else:
            assert write_post(cast.author, title="In another tab").status_code == 303
            # A form error (an empty title is allowed now, #23: a tag too long is not).
            response = cast.author.post("/posts", data={**values, "tags": "x" * 41})
            assert response.status_code == 422
        assert response.form_values("#post-form")["body"] == "Words I *must not* lose."
    finally:
        get_database(app).dispose()


def test_purging_a_post_forgets_its_view_count(cast: Cast) -> None:
    """A purged post's count goes with it: SQLite may give a new post the same id."""
    from blog.conftest import delete_post, set_post, utc_ago
    from pyproject.blog.trash import purge_expired

    slug = slug_of(write_post(cast.author, title="Read, then purged", status="published"))
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    post_id = get_post(cast.app, slug).id
    assert get_view_counts(cast.app).views([post_id]) == {post_id: 1}
    assert delete_post(cast.author, slug).status_code == 303
    set_post(cast.app, slug, deleted_at=utc_ago(days=40))
    assert purge_expired(get_database(cast.app), 30) == 1
    assert get_view_counts(cast.app).views([post_id]) == {}
