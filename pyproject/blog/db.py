"""The database: one engine per process, one session per request, SQLite tuned for workers.

SQLite runs in WAL mode with foreign keys on and a busy timeout; a transaction that
will write starts with BEGIN IMMEDIATE, so several gunicorn workers writing at once
queue for the lock instead of failing with "database is locked" half-way through.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own lock is the only queue
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from pyproject.lib import App, Request
from pyproject.lib.security import UNSAFE_METHODS

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    """Give an engine for `url`, with SQLite's pragmas and locking set up."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _setup_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """The process's engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    def session(self, *, write: bool = False) -> Session:
        """Give a new session; `write=True` takes SQLite's write lock when it begins."""
        session = self.sessions()
        if write and is_sqlite(self.engine):
            session.connection(execution_options={"sqlite_immediate": True})
        return session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """Give a session in a write transaction, committed on success, rolled back on error."""
        session = self.session(write=True)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """Give a session for reading, closed afterwards."""
        session = self.session()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app: App, database: Database) -> None:
    """Attach the database to the app and close each request's session in teardown."""
    app.extensions["db"] = database
    app.extensions["view_counts"] = ViewCounts(database)

    @app.after_request
    def release_session(request: Request, response: Any) -> Any:
        # Before the session store writes: on SQLite a POST's transaction holds the write
        # lock, and the store's own connection would wait for it forever.
        close_request_session(request)
        return response

    @app.teardown_request
    def close_session(request: Request, error: BaseException | None) -> None:
        close_request_session(request)


def close_request_session(request: Request) -> None:
    """Roll back what the request did not commit and give its connection back."""
    session: Session | None = request.context.pop("db", None)
    if session is not None:
        try:
            session.rollback()
        finally:
            session.close()


class ViewCounts:
    """Readers' view counts: exact, and never waiting for an author's save.

    On SQLite the counts live in a database file of their own beside the site's
    (``<database>-views``), so a count takes only that file's write lock, never the one a
    save holds; counters of all workers first queue on a lock file (flock), which the
    kernel hands over the moment it is released, where SQLite's busy handler would sleep.
    Each thread keeps one plain connection. On first use the counts the site's own
    ``post_views`` table held (before this store existed) are carried over, once.

    On PostgreSQL the counts are the ``post_views`` table, one upsert per view: a row
    lock of its own, which a save (holding its post with FOR NO KEY UPDATE) does not block.
    """

    _SQLITE_SCHEMA = (
        "CREATE TABLE IF NOT EXISTS post_views"
        " (post_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS carried_over (source TEXT PRIMARY KEY)",
    )
    _SQLITE_COUNT = (
        "INSERT INTO post_views (post_id, views) VALUES (?, 1)"
        " ON CONFLICT (post_id) DO UPDATE SET views = views + 1"
    )
    _SQLITE_SET = (
        "INSERT INTO post_views (post_id, views) VALUES (?, ?)"
        " ON CONFLICT (post_id) DO UPDATE SET views = excluded.views"
    )
    _SQLITE_ADD = (
        "INSERT INTO post_views (post_id, views) VALUES (?, ?)"
        " ON CONFLICT (post_id) DO UPDATE SET views = views + excluded.views"
    )
    _SQLITE_VIEWS = "SELECT post_id, views FROM post_views WHERE post_id IN ({marks})"
    _POSTGRES_VIEWS = "SELECT post_id, views FROM post_views WHERE post_id = ANY(%(ids)s)"
    # A post's first view makes its row; a post purged meanwhile gets none.
    _POSTGRES_COUNT = (
        "INSERT INTO post_views (post_id, views) SELECT id, 1 FROM posts WHERE id = %(id)s"
        " ON CONFLICT (post_id) DO UPDATE SET views = post_views.views + 1"
    )
    _POSTGRES_SET = (
        "INSERT INTO post_views (post_id, views) SELECT id, %(views)s FROM posts"
        " WHERE id = %(id)s ON CONFLICT (post_id) DO UPDATE SET views = excluded.views"
    )

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sqlite_path = database.engine.url.database if is_sqlite(database.engine) else None
        self.path = f"{self.sqlite_path}-views" if self.sqlite_path else None
        self._local = threading.local()
        # Tests may watch the statements (sqlite3's trace callback on new connections).
        self.trace: Callable[[str], None] | None = None

    # --- writing ---

    def count(self, post_id: int) -> None:
        """Add one view to the post."""
        if self.path is None:
            with self.database.engine.begin() as connection:
                connection.exec_driver_sql(self._POSTGRES_COUNT, {"id": post_id})
            return
        with self._writing() as connection:
            connection.execute(self._SQLITE_COUNT, (post_id,))

    def set_views(self, counts: dict[int, int]) -> None:
        """Set posts' view counts outright (for imports and generated sites)."""
        if self.path is None:
            with self.database.engine.begin() as connection:
                for post_id, views in counts.items():
                    connection.exec_driver_sql(self._POSTGRES_SET, {"id": post_id, "views": views})
            return
        with self._writing() as connection:
            connection.executemany(self._SQLITE_SET, counts.items())

    def forget(self, post_ids: Iterable[int]) -> None:
        """Drop the counts of posts that are gone (a new post may get the same id)."""
        ids = list(post_ids)
        if not ids or self.path is None:
            return  # PostgreSQL: the foreign key's ON DELETE CASCADE does it
        with self._writing() as connection:
            connection.executemany("DELETE FROM post_views WHERE post_id = ?", [(i,) for i in ids])

    # --- reading ---

    def views(self, post_ids: Iterable[int]) -> dict[int, int]:
        """Give the view counts of these posts (those never viewed are left out)."""
        ids = list(post_ids)
        if not ids:
            return {}
        if self.path is None:
            with self.database.engine.connect() as connection:
                rows = connection.exec_driver_sql(self._POSTGRES_VIEWS, {"ids": ids})
                return {post_id: views for post_id, views in rows}
        counts: dict[int, int] = {}
        connection = self._connection()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = self._SQLITE_VIEWS.format(marks=", ".join("?" * len(chunk)))
            counts.update(connection.execute(sql, chunk).fetchall())
        return counts

    def most_viewed(self, post_ids: Iterable[int], limit: int) -> list[tuple[int, int]]:
        """Give up to `limit` of these posts as (id, views), most viewed first, views > 0."""
        counts = self.views(post_ids)
        ranked = sorted(
            ((post_id, views) for post_id, views in counts.items() if views > 0),
            key=lambda item: (-item[1], -item[0]),
        )
        return ranked[:limit]

    # --- SQLite plumbing ---

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Give this thread's connection inside a write transaction, queued on the lock file."""
        connection = self._connection()
        queue = self._local.queue
        if queue is not None:
            fcntl.flock(queue, fcntl.LOCK_EX)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            if queue is not None:
                fcntl.flock(queue, fcntl.LOCK_UN)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous=NORMAL")
            for statement in self._SQLITE_SCHEMA:
                connection.execute(statement)
            if self.trace is not None:
                connection.set_trace_callback(self.trace)
            self._local.connection = connection
            self._local.queue = self._open_queue()
            self._carry_over(connection)
        return connection

    def _carry_over(self, connection: sqlite3.Connection) -> None:
        """Add the counts the site's own post_views table held, once per database."""
        if connection.execute("SELECT 1 FROM carried_over").fetchone():
            return
        with contextlib.closing(sqlite3.connect(self.sqlite_path)) as site:
            table = site.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'post_views'"
            ).fetchone()
            if table is None:  # not migrated yet: try again on a later first use
                return
            rows = site.execute("SELECT post_id, views FROM post_views WHERE views > 0").fetchall()
        with self._writing() as writing:
            if writing.execute("SELECT 1 FROM carried_over").fetchone():
                return  # another worker did it meanwhile
            writing.executemany(self._SQLITE_ADD, rows)
            writing.execute("INSERT INTO carried_over (source) VALUES ('post_views')")

    def _open_queue(self) -> IO[bytes] | None:
        """Open this thread's handle on the counters' lock file (None where there is none)."""
        if fcntl is None or not self.path:
            return None
        try:
            return open(f"{self.path}.lock", "ab")  # kept open, closed by close()
        except OSError:  # a read-only folder, say: SQLite's own lock still serialises
            return None

    def close(self) -> None:
        """Close this thread's connection (the next use opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        queue = getattr(self._local, "queue", None)
        if queue is not None:
            queue.close()
            self._local.queue = None


# Any constant: the key of the PostgreSQL advisory lock that post writes queue on.
_POST_WRITES_LOCK = 7_312_004


def lock_post_writes(session: Session) -> None:
    """Queue this transaction behind any other that writes posts, until it ends.

    SQLite's BEGIN IMMEDIATE already does this for every write; on PostgreSQL it keeps two
    saves from choosing the same new slug or creating the same new tag at once. Writing
    posts is rare enough that one at a time costs nothing a reader would notice.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POST_WRITES_LOCK})


def end_transaction(session: Session) -> None:
    """End the session's transaction so far, keeping what it loaded, so no lock is held.

    A POST's session begins by taking SQLite's write lock; a view that has slow work to do
    (rendering a post) ends it first and begins a new one with begin_write when it writes.
    """
    if session.in_transaction():
        session.commit()


def begin_write(session: Session) -> None:
    """Begin the session's writing transaction: SQLite's write lock, PostgreSQL's post queue.

    What the view loaded before is kept but may be stale: compare (or refresh) what the
    write depends on after this, inside the transaction.
    """
    end_transaction(session)
    if is_sqlite(session.get_bind()):
        session.connection(execution_options={"sqlite_immediate": True})
    lock_post_writes(session)


def get_database(app: App) -> Database:
    return app.extensions["db"]


def get_view_counts(app: App) -> ViewCounts:
    return app.extensions["view_counts"]


def get_db(request: Request) -> Session:
    """Give the request's session, opened on first use (a write transaction for POSTs)."""
    session = request.context.get("db")
    if session is None:
        from pyproject.lib import current_app

        database = get_database(current_app())
        session = database.session(write=request.method in UNSAFE_METHODS)
        request.context["db"] = session
    return session
