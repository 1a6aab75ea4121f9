"""The database: one engine per process, one session per request, SQLite tuned for workers.

SQLite runs in WAL mode with foreign keys on and a busy timeout; a transaction that
will write starts with BEGIN IMMEDIATE, so several gunicorn workers writing at once
queue for the lock instead of failing with "database is locked" half-way through.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own lock is the only queue
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from pyproject.lib import App, Request

SQLITE_BUSY_TIMEOUT_MS = 30_000
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    app.extensions["view_counter"] = ViewCounter(database)

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


class ViewCounter:
    """Adds one to a post's view count: one SQL increment, so concurrent views all count.

    It runs on every reader's visit, cached page or not, so on SQLite it skips the ORM and
    the pool: each thread keeps one plain connection, and the increment is its own short
    write transaction, begun IMMEDIATE like every other write.

    Counters of all workers first queue on a lock file beside the database (flock). On
    SQLite's own lock a writer that finds it taken sleeps a millisecond or more before
    trying again, for a transaction that takes some twenty microseconds; the kernel
    hands a flock over the moment it is released.
    """

    # A post's first view makes its row; a post purged meanwhile gets none.
    _SQL = (
        "INSERT INTO post_views (post_id, views) SELECT id, 1 FROM posts WHERE id = ?"
        " ON CONFLICT (post_id) DO UPDATE SET views = post_views.views + 1"
    )

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sqlite_path = database.engine.url.database if is_sqlite(database.engine) else None
        self._local = threading.local()
        # Tests may watch the statements (sqlite3's trace callback on new connections).
        self.trace: Callable[[str], None] | None = None

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.sqlite_path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous=NORMAL")
            if self.trace is not None:
                connection.set_trace_callback(self.trace)
            self._local.connection = connection
            self._local.queue = self._open_queue()
        return connection

    def _open_queue(self) -> IO[bytes] | None:
        """Open this thread's handle on the counters' lock file (None where there is none)."""
        if fcntl is None or not self.sqlite_path or self.sqlite_path == ":memory:":
            return None
        try:
            return open(f"{self.sqlite_path}-counter.lock", "ab")  # kept open, closed by close()
        except OSError:  # a read-only folder, say: SQLite's own lock still serialises
            return None

    def count(self, post_id: int) -> None:
        if self.sqlite_path is None:
            with self.database.engine.begin() as connection:
                connection.exec_driver_sql(self._SQL.replace("?", "%(id)s"), {"id": post_id})
            return
        connection = self._connection()
        queue = self._local.queue
        if queue is not None:
            fcntl.flock(queue, fcntl.LOCK_EX)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(self._SQL, (post_id,))
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            if queue is not None:
                fcntl.flock(queue, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this thread's connection (the next count opens a new one)."""
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


def get_database(app: App) -> Database:
    return app.extensions["db"]


def get_db(request: Request) -> Session:
    """Give the request's session, opened on first use (a write transaction for POSTs)."""
    session = request.context.get("db")
    if session is None:
        from pyproject.lib import current_app

        database = get_database(current_app())
        session = database.session(write=request.method in UNSAFE_METHODS)
        request.context["db"] = session
    return session
