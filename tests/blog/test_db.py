"""The fast paths' way into the database: raw connections per thread, named statements,
view counts, and the one rule for a post readers may see.

Everything runs on a real SQLite file, and on PostgreSQL where one is reachable.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text

from pyproject.blog import caching
from pyproject.blog.db import RawConnections, Statement, ViewCounts, get_database
from pyproject.blog.models import Post, User, UTCDateTime, utcnow, visible, visible_sql
from pyproject.lib import App

TABLE = Statement(
    sqlite="CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    postgresql="CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
)
ADD_NOTE = Statement(
    sqlite="INSERT INTO notes (id, body) VALUES (:id, :body)",
    postgresql="INSERT INTO notes (id, body) VALUES (%(id)s, %(body)s)",
)
NOTES = Statement(
    sqlite="SELECT id, body FROM notes ORDER BY id",
    postgresql="SELECT id, body FROM notes ORDER BY id",
)


def dialect_of(app: App) -> str:
    return get_database(app).engine.dialect.name


@pytest.fixture
def raw(any_db_app: App) -> Iterator[RawConnections]:
    """Raw connections to the app's database, with an empty `notes` table."""
    connections = get_database(any_db_app).raw_connections()
    connections.run(TABLE)
    yield connections
    connections.dispose()


# --- one connection per thread ----------------------------------------------------------


def test_a_thread_keeps_its_connection(raw: RawConnections) -> None:
    first = raw.connection()
    assert raw.connection() is first
    raw.run(ADD_NOTE, {"id": 1, "body": "kept"})
    assert raw.connection() is first


def test_each_thread_has_a_connection_of_its_own(raw: RawConnections) -> None:
    mine = raw.connection()
    seen: list[object] = []

    def other_thread() -> None:
        seen.append(raw.connection())
        raw.run(ADD_NOTE, {"id": 2, "body": "from another thread"})
        raw.close()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert seen and seen[0] is not mine
    assert raw.run(NOTES).fetchall() == [(2, "from another thread")]


def test_statements_commit_by_themselves(raw: RawConnections) -> None:
    """Autocommit: another connection sees a statement's write at once."""
    raw.run(ADD_NOTE, {"id": 1, "body": "seen"})
    with raw.engine.connect() as other:
        assert other.execute(text("SELECT body FROM notes")).scalars().all() == ["seen"]


def test_a_transaction_commits_together(raw: RawConnections) -> None:
    with raw.transaction():
        raw.run(ADD_NOTE, {"id": 1, "body": "one"})
        raw.run_many(ADD_NOTE, [{"id": 2, "body": "two"}, {"id": 3, "body": "three"}])
    assert [row[0] for row in raw.run(NOTES).fetchall()] == [1, 2, 3]


def test_a_transaction_that_fails_leaves_nothing(raw: RawConnections) -> None:
    with pytest.raises(RuntimeError), raw.transaction():
        raw.run(ADD_NOTE, {"id": 1, "body": "undone"})
        raise RuntimeError("the caller changed its mind")
    assert raw.run(NOTES).fetchall() == []
    raw.run(ADD_NOTE, {"id": 1, "body": "the connection is still usable"})
    assert len(raw.run(NOTES).fetchall()) == 1


def test_a_read_only_connection_refuses_to_write(any_db_app: App) -> None:
    database = get_database(any_db_app)
    writable = database.raw_connections()
    writable.run(TABLE)
    reader = database.raw_connections(read_only=True)
    try:
        with pytest.raises(Exception, match=r"(?i)read.?only"):
            reader.run(ADD_NOTE, {"id": 1, "body": "refused"})
        assert reader.run(NOTES).fetchall() == []
    finally:
        reader.dispose()
        writable.dispose()


def test_close_forgets_the_connection_and_what_was_kept_beside_it(raw: RawConnections) -> None:
    first = raw.connection()
    raw.local.kept = "validators computed on the first connection"
    raw.close()
    assert not hasattr(raw.local, "kept")
    assert raw.connection() is not first


def test_dispose_closes_this_threads_connection(raw: RawConnections) -> None:
    first = raw.connection()
    raw.dispose()
    if raw.dialect == "sqlite":
        with pytest.raises(sqlite3.ProgrammingError):
            first.execute("SELECT 1")
    else:
        assert first.closed
    assert raw.run(NOTES).fetchall() == []  # the next use opens a new one


def test_the_database_disposes_of_its_raw_connections(app: App) -> None:
    database = get_database(app)
    raw = database.raw_connections()
    connection = raw.connection()
    database.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")


def test_a_set_up_that_writes_never_waits_for_its_own_thread(app: App) -> None:
    """A set-up runs queued on the writers' lock file, and may write in a transaction
    (the view counters' carry-over does). When dispose() gives the connections a new
    namespace meanwhile (an app shutting down while its job worker starts), that
    transaction opens a second handle on the same lock file: the thread must go on, not
    wait for the lock it holds itself (this hung a worker, and the test run, for good)."""
    database = get_database(app)
    in_set_up, disposed = threading.Event(), threading.Event()
    raw: RawConnections

    def set_up(connection: sqlite3.Connection) -> None:
        connection.execute(TABLE.sqlite)
        if not in_set_up.is_set():
            in_set_up.set()
            assert disposed.wait(10)
        with raw.transaction() as writing:
            writing.execute("INSERT OR IGNORE INTO notes (id, body) VALUES (1, 'set up')")

    raw = database.raw_connections(queue_writers=True, setup=set_up)
    done: list[object] = []
    starting = threading.Thread(target=lambda: done.append(raw.run(NOTES).fetchall()), daemon=True)
    starting.start()
    assert in_set_up.wait(10)
    raw.dispose()
    disposed.set()
    starting.join(20)
    assert not starting.is_alive(), "the set-up waited for its own lock"
    assert done == [[(1, "set up")]]
    # The lock went with the outermost holder: another thread's writer gets it at once.
    other = threading.Thread(
        target=lambda: raw.run(ADD_NOTE, {"id": 2, "body": "next"}), daemon=True
    )
    other.start()
    other.join(20)
    assert not other.is_alive()
    assert raw.run(NOTES).fetchall() == [(1, "set up"), (2, "next")]
    raw.dispose()


def test_a_nested_transaction_keeps_the_lock_until_the_outermost_ends(app: App) -> None:
    """A set-up's own transaction ends inside the set-up: the queue stays this thread's
    until the set-up is over, so no other writer slips in between."""
    database = get_database(app)
    raw: RawConnections
    seen: list[bool] = []

    def other_writer_would_wait() -> bool:
        with open(f"{raw.path}.lock", "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def set_up(connection: sqlite3.Connection) -> None:
        connection.execute(TABLE.sqlite)
        with raw.transaction() as writing:
            writing.execute("INSERT INTO notes (id, body) VALUES (1, 'set up')")
        seen.append(other_writer_would_wait())

    raw = database.raw_connections(queue_writers=True, setup=set_up)
    raw.connection()
    assert seen == [True]
    assert not other_writer_would_wait()  # and it is let go after the set-up
    raw.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_opens_its_own_connection(raw: RawConnections) -> None:
    """A gunicorn worker forked after the parent connected must never share its socket."""
    parents = raw.connection()
    raw.run(ADD_NOTE, {"id": 1, "body": "parent"})
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report, and leave without running pytest's exit code
        try:
            fresh = getattr(raw.local, "connection", None) is None
            mine = raw.connection()
            raw.run(ADD_NOTE, {"id": 2, "body": "child"})
            answer = b"ok" if fresh and mine is not parents else b"shared"
        except BaseException as error:
            answer = repr(error).encode()
        os.write(writer, answer)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    assert answer == b"ok"
    assert raw.connection() is parents  # the parent's is untouched, and still works
    assert [row[1] for row in raw.run(NOTES).fetchall()] == ["parent", "child"]


def test_a_postgres_connection_the_server_dropped_is_replaced(raw: RawConnections) -> None:
    if raw.dialect != "postgresql":
        pytest.skip("SQLite connections are files: the server cannot drop them")
    pid = raw.run(Statement(sqlite="", postgresql="SELECT pg_backend_pid()")).fetchone()[0]
    with raw.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    raw.run(ADD_NOTE, {"id": 1, "body": "after the restart"})
    assert raw.run(NOTES).fetchall() == [(1, "after the restart")]


# --- named statements -------------------------------------------------------------------


NAMED = {
    "content state": caching._STATE_SQL,
    "site version": caching._VERSION_SQL,
    "count a view": ViewCounts.COUNT,
    "set views": ViewCounts.SET,
    "read views": ViewCounts.VIEWS,
}


@pytest.mark.parametrize("name", list(NAMED))
def test_a_named_statement_is_written_out_for_both_dialects(name: str) -> None:
    statement = NAMED[name]
    assert statement.sqlite.strip() and statement.postgresql.strip()
    # Each in its own parameter style: neither was made by rewriting the other.
    assert "%(" not in statement.sqlite
    assert re.search(r"(?<![:\w]):[a-z_]+", statement.postgresql) is None
    if "{marks}" not in statement.sqlite:  # (SQLite's list of ids: one mark each)
        # ... and both take the same parameters.
        assert set(re.findall(r":([a-z_]+)", statement.sqlite)) == set(
            re.findall(r"%\(([a-z_]+)\)s", statement.postgresql)
        )


def test_the_content_state_statement_runs_on_the_database(any_db_app: App) -> None:
    state = any_db_app.extensions["content_state"]
    etag, last_modified = state.validators()
    assert etag.startswith(f"{any_db_app.extensions['templates_version']}-")
    assert last_modified.tzinfo is not None


# --- the rule for a post readers may see --------------------------------------------------


def add_posts(app: App) -> dict[str, int]:
    """Add one post of each kind readers may or may not see; give their ids by kind."""
    now = utcnow()
    kinds = {
        "published": dict(status="published", published_at=now - timedelta(days=1)),
        "scheduled": dict(status="published", published_at=now + timedelta(days=1)),
        "draft": dict(status="draft", published_at=None),
        "old draft": dict(status="draft", published_at=now - timedelta(days=2)),
        "trashed": dict(status="published", published_at=now - timedelta(days=3), deleted_at=now),
    }
    with get_database(app).write() as session:
        author = User(username="rule", email="rule@example.com", password_hash="x")
        session.add(author)
        posts = {
            kind: Post(
                author=author,
                title=kind,
                slug=kind.replace(" ", "-"),
                body_md="",
                body_html="",
                **values,
            )
            for kind, values in kinds.items()
        }
        session.add_all(posts.values())
        session.flush()
        return {kind: post.id for kind, post in posts.items()}


def test_the_orm_and_the_raw_sql_see_the_same_posts(any_db_app: App) -> None:
    ids = add_posts(any_db_app)
    now = utcnow()
    rule = text(f"SELECT id FROM posts WHERE {visible_sql(dialect_of(any_db_app))}")
    with get_database(any_db_app).read() as session:
        orm = set(session.scalars(select(Post.id).where(*visible(now))))
        raw = set(
            session.scalars(rule.bindparams(bindparam("now", type_=UTCDateTime())), {"now": now})
        )
    assert orm == raw == {ids["published"]}


def test_the_rule_is_compiled_for_each_dialect_with_its_placeholder() -> None:
    assert visible_sql("sqlite", ":now") == (
        "posts.status = 'published' AND posts.published_at <= :now AND posts.deleted_at IS NULL"
    )
    assert "posts.published_at <= %(now)s" in visible_sql("postgresql", "%(now)s")


# --- view counts ----------------------------------------------------------------------


@pytest.fixture
def posts(any_db_app: App) -> list[int]:
    return sorted(add_posts(any_db_app).values())


@pytest.fixture
def counts(any_db_app: App) -> Iterator[ViewCounts]:
    store = ViewCounts(get_database(any_db_app))
    yield store
    store.close()


def test_views_are_counted_one_by_one(counts: ViewCounts, posts: list[int]) -> None:
    first, second = posts[:2]
    for _ in range(3):
        counts.count(first)
    counts.count(second)
    assert counts.views(posts) == {first: 3, second: 1}
    assert counts.most_viewed(posts, 1) == [(first, 3)]


def test_views_can_be_set_and_read_in_any_number(counts: ViewCounts, posts: list[int]) -> None:
    counts.set_views({post_id: post_id * 10 for post_id in posts})
    assert counts.views(posts) == {post_id: post_id * 10 for post_id in posts}
    many = [*posts, *range(10_000, 12_000)]  # ids that were never viewed are left out
    assert counts.views(many) == counts.views(posts)
    assert counts.views([]) == {}


def test_counts_from_several_threads_all_arrive(counts: ViewCounts, posts: list[int]) -> None:
    post_id = posts[0]

    def reader() -> None:
        for _ in range(20):
            counts.count(post_id)
        counts.close()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts.views([post_id]) == {post_id: 80}


def test_sqlite_counts_live_in_a_file_of_their_own_and_can_be_forgotten(app: App) -> None:
    ids = sorted(add_posts(app).values())
    counts = ViewCounts(get_database(app))
    try:
        counts.set_views({ids[0]: 5, ids[1]: 6})
        assert Path(counts.path).exists()
        assert Path(f"{counts.path}.lock").exists()
        with sqlite3.connect(counts.path) as own:
            assert dict(own.execute("SELECT post_id, views FROM post_views")) == {
                ids[0]: 5,
                ids[1]: 6,
            }
        counts.forget([ids[0]])
        assert counts.views(ids) == {ids[1]: 6}
    finally:
        counts.close()
