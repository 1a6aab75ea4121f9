"""The database: one engine per process, one session per request, SQLite tuned for workers.

SQLite runs in WAL mode with foreign keys on and a busy timeout; a transaction that
will write starts with BEGIN IMMEDIATE, so several gunicorn workers writing at once
queue for the lock instead of failing with "database is locked" half-way through.

The request's session is closed in teardown, and only there. The few fast paths that
need a plain connection (the validators, view counts) get one per thread from
RawConnections, and run named Statements written out for each dialect.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
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
        self._raw: weakref.WeakSet[RawConnections] = weakref.WeakSet()

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

    def raw_connections(self, **options: Any) -> RawConnections:
        """Give a fast path's connections to this database (options: see RawConnections)."""
        raw = RawConnections(self.engine, **options)
        self._raw.add(raw)
        return raw

    def dispose(self) -> None:
        """Close the engine's pooled connections and the raw ones."""
        self.engine.dispose()
        for raw in list(self._raw):
            raw.dispose()


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement, written out in full for each dialect (never rewritten from one).

    Parameters are named: ``:name`` in SQLite's text, ``%(name)s`` in PostgreSQL's; both
    take the same dict.
    """

    sqlite: str
    postgresql: str


# The writers' lock files this thread holds, by path, with how deep: flock locks belong to
# an open file, so a thread that asked again through another handle on the same file (a
# set-up that writes in a transaction, after dispose() gave its connections a new
# namespace) would wait for itself forever.
_HELD = threading.local()


def queue_lock(queue: IO[bytes] | None) -> None:
    """Queue on a writers' lock file (at once where this thread holds it already)."""
    if queue is None:
        return
    held = _HELD.__dict__.setdefault("depths", {})
    depth = held.get(queue.name, 0)
    if depth == 0:
        fcntl.flock(queue, fcntl.LOCK_EX)
    held[queue.name] = depth + 1


def queue_unlock(queue: IO[bytes] | None) -> None:
    """Leave the queue_lock() taken on this handle; the lock goes at the outermost."""
    if queue is None:
        return
    held = _HELD.__dict__.setdefault("depths", {})
    depth = held.get(queue.name, 0) - 1
    if depth > 0:
        held[queue.name] = depth
        return
    held.pop(queue.name, None)
    if not queue.closed:  # (closing the handle let the lock go already)
        fcntl.flock(queue, fcntl.LOCK_UN)


class RawConnections:
    """One plain DB-API connection per thread, for the few fast paths the ORM would slow.

    SQLite: a sqlite3 connection on the database file (or on `path`, a file beside it),
    in autocommit mode, so every BEGIN is ours; with `read_only` it cannot write; with
    `queue_writers` transactions first queue on a lock file beside it (flock), which the
    kernel hands over the moment it is released, where SQLite's busy handler would sleep.
    PostgreSQL: a psycopg connection made with the engine's own arguments, in autocommit
    mode: a statement is one round trip, with no pool checkout, ping or reset around it;
    one the server dropped is replaced on its next use. `setup(connection)` runs on each
    new connection.

    A connection opens on a thread's first use, so every process forked before that (a
    gunicorn worker) makes its own; one inherited over a fork is never used or closed
    by the child, whose threads start afresh.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        path: str | None = None,
        read_only: bool = False,
        queue_writers: bool = False,
        setup: Callable[[Any], None] | None = None,
    ) -> None:
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"no fast path for {self.dialect}: SQLite or PostgreSQL only")
        self.engine = engine
        self.path = path or (engine.url.database if self.dialect == "sqlite" else None)
        self.read_only = read_only
        self.queue_writers = queue_writers and self.dialect == "sqlite" and fcntl is not None
        self.setup = setup
        # This thread's namespace: `connection`, its `queue` (the lock file's handle), and
        # what callers keep beside it (their state for that connection goes when it does).
        self.local = threading.local()
        _ALL_RAW.add(self)

    def connection(self) -> Any:
        """Give this thread's connection, opened (and set up) on first use."""
        local = self.local
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = self._connect()
            local.queue = queue = self._open_queue()
            if self.setup is not None:
                # Queued like writers: the set-up writes (a journal mode, a schema), and
                # several threads or workers starting at once would otherwise race for it.
                queue_lock(queue)
                try:
                    self.setup(connection)
                except BaseException:
                    self.close()  # the next use sets a new connection up again
                    raise
                finally:
                    queue_unlock(queue)
        return connection

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            connection = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # used by one thread; closed by any
            )
            if self.read_only:
                connection.execute("PRAGMA query_only = 1")
            return connection
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        connection = dialect.connect(*cargs, **cparams)
        connection.autocommit = True
        if self.read_only:
            connection.execute("SET default_transaction_read_only = on")
        return connection

    def _open_queue(self) -> IO[bytes] | None:
        """Open this thread's handle on the writers' lock file (None where there is none)."""
        if not self.queue_writers:
            return None
        try:
            return open(f"{self.path}.lock", "ab")  # kept open, closed by close()
        except OSError:  # a read-only folder, say: SQLite's own lock still serialises
            return None

    def run(self, statement: Statement, params: Mapping[str, Any] | None = None) -> Any:
        """Run a named statement on this thread's connection; give its cursor."""
        return self._execute(getattr(statement, self.dialect), params or {})

    def run_text(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run SQL written for this connection's dialect alone (a fast path one of the two
        has, e.g. stats' one-statement view count on PostgreSQL); give its cursor."""
        return self._execute(sql, params or {})

    def run_many(self, statement: Statement, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run a named statement once for each dict of parameters."""
        self._execute(getattr(statement, self.dialect), list(rows), many=True)

    def _execute(self, sql: str, params: Any, *, many: bool = False) -> Any:
        local = self.local
        connection = getattr(local, "connection", None) or self.connection()
        try:
            if many:
                return connection.cursor().executemany(sql, params)
            return connection.execute(sql, params)  # (sqlite3's and psycopg's shortcut)
        except Exception:
            if not self._dropped(connection) or getattr(local, "in_transaction", False):
                raise
        # The server went away (a restart): once more, on a new connection.
        self.close()
        return self._execute(sql, params, many=many)

    def _dropped(self, connection: Any) -> bool:
        """Give whether a PostgreSQL connection was lost (SQLite's are never)."""
        return self.dialect == "postgresql" and bool(connection.closed)

    def transaction(self) -> Transaction:
        """Give a context for a transaction on this thread's connection (see Transaction)."""
        return Transaction(self)

    def close(self) -> None:
        """Close this thread's connection and forget what was kept beside it."""
        connection = getattr(self.local, "connection", None)
        queue = getattr(self.local, "queue", None)
        vars(self.local).clear()
        if queue is not None:
            queue.close()
        if connection is not None:
            with contextlib.suppress(Exception):  # a connection the server dropped
                connection.close()

    def dispose(self) -> None:
        """Close this thread's connection now, and every other thread's as it is dropped."""
        self.close()
        self.local = threading.local()

    def _after_fork(self) -> None:
        # The parent's connections stay open and untouched: closing one here would end
        # the parent's session (PostgreSQL) or disturb its locks (SQLite).
        _INHERITED.append(self.local)
        self.local = threading.local()


class Transaction:
    """`with raw.transaction() as connection:` commits at the end, rolls back on error.

    On SQLite it begins IMMEDIATE: it holds the write lock from the start, so it never
    has to upgrade a read (which fails at once if another connection wrote meanwhile);
    with `queue_writers` it first queues on the lock file. (A class rather than a
    generator: it is on every view count's path.)
    """

    __slots__ = ("connection", "queue", "raw")

    def __init__(self, raw: RawConnections) -> None:
        self.raw = raw

    def __enter__(self) -> Any:
        raw = self.raw
        raw.connection()
        local = raw.local
        self.queue = queue = local.queue
        queue_lock(queue)
        try:
            raw._execute("BEGIN IMMEDIATE" if raw.dialect == "sqlite" else "BEGIN", ())
        except BaseException:
            queue_unlock(queue)
            raise
        self.connection = connection = local.connection
        local.in_transaction = True
        return connection

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.raw.local.in_transaction = False
        try:
            if kind is None:
                self.connection.execute("COMMIT")
            elif not self.raw._dropped(self.connection):
                self.connection.execute("ROLLBACK")
        finally:
            queue_unlock(self.queue)


_ALL_RAW: weakref.WeakSet[RawConnections] = weakref.WeakSet()
_INHERITED: list[threading.local] = []


def _after_fork_in_child() -> None:
    for raw in list(_ALL_RAW):
        raw._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def init_app(app: App, database: Database) -> None:
    """Attach the database to the app and close each request's session in teardown.

    Teardown is the only place: the session store writes through the same session
    (pyproject.blog.session_store), after the view and the after-request hooks.
    """
    app.extensions["db"] = database
    app.extensions["view_counts"] = ViewCounts(database)

    @app.teardown_request
    def close_session(request: Request, error: BaseException | None) -> None:
        close_request_session(request)


def close_request_session(request: Request) -> None:
    """Drop what the request did not commit and give its connection back.

    close() alone: the pool rolls the connection back as it takes it (reset on return),
    without the ORM's rollback (expiring every object, its events) on a session that is
    dropped here anyway. What the after_rollback listeners forget (jobs and deliveries
    queued for a commit, in session.info) goes with the session: nothing commits it now.
    """
    session: Session | None = request.context.pop("db", None)
    if session is not None:
        session.close()


class ViewCounts:
    """Readers' view counts: exact, and never waiting for an author's save.

    On SQLite the counts live in a database file of their own beside the site's
    (``<database>-views``), so a count takes only that file's write lock, never the one a
    save holds; counters of all workers first queue on a lock file (flock), which the
    kernel hands over the moment it is released, where SQLite's busy handler would sleep.
    On first use the counts the site's own ``post_views`` table held (before this store
    existed) are carried over, once.

    On PostgreSQL the counts are the ``post_views`` table, one upsert per view: a row
    lock of its own, which a save (holding its post with FOR NO KEY UPDATE) does not block.

    Either way each thread keeps one plain connection (RawConnections).
    """

    _SQLITE_SCHEMA = (
        "CREATE TABLE IF NOT EXISTS post_views"
        " (post_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS carried_over (source TEXT PRIMARY KEY)",
    )
    _SQLITE_ADD = (
        "INSERT INTO post_views (post_id, views) VALUES (?, ?)"
        " ON CONFLICT (post_id) DO UPDATE SET views = views + excluded.views"
    )
    _SQLITE_FORGET = "DELETE FROM post_views WHERE post_id = ?"
    # On PostgreSQL a post's first view makes its row; a post purged meanwhile gets none.
    COUNT = Statement(
        sqlite=(
            "INSERT INTO post_views (post_id, views) VALUES (:id, 1)"
            " ON CONFLICT (post_id) DO UPDATE SET views = views + 1"
        ),
        postgresql=(
            "INSERT INTO post_views (post_id, views) SELECT id, 1 FROM posts WHERE id = %(id)s"
            " ON CONFLICT (post_id) DO UPDATE SET views = post_views.views + 1"
        ),
    )
    SET = Statement(
        sqlite=(
            "INSERT INTO post_views (post_id, views) VALUES (:id, :views)"
            " ON CONFLICT (post_id) DO UPDATE SET views = excluded.views"
        ),
        postgresql=(
            "INSERT INTO post_views (post_id, views) SELECT id, %(views)s FROM posts"
            " WHERE id = %(id)s ON CONFLICT (post_id) DO UPDATE SET views = excluded.views"
        ),
    )
    # SQLite has no array parameter: the ids go in as one mark each, 500 at a time (the
    # fastest way in: quicker than a JSON array, at any number of ids).
    VIEWS = Statement(
        sqlite="SELECT post_id, views FROM post_views WHERE post_id IN ({marks})",
        postgresql="SELECT post_id, views FROM post_views WHERE post_id = ANY(%(ids)s)",
    )

    def __init__(self, database: Database) -> None:
        self.database = database
        sqlite = is_sqlite(database.engine)
        self.sqlite_path = database.engine.url.database if sqlite else None
        self.raw = database.raw_connections(
            path=f"{self.sqlite_path}-views" if sqlite else None,
            queue_writers=True,
            setup=self._set_up if sqlite else None,
        )
        # Tests may watch the statements (sqlite3's trace callback on new connections).
        self.trace: Callable[[str], None] | None = None

    @property
    def path(self) -> str | None:
        """The counters' own database file (SQLite), or None (PostgreSQL)."""
        return self.raw.path if self.sqlite_path else None

    @path.setter
    def path(self, value: str) -> None:
        self.raw.path = value

    # --- writing ---

    def count(self, post_id: int) -> None:
        """Add one view to the post."""
        if self.sqlite_path is None:
            self.raw.run(self.COUNT, {"id": post_id})  # one statement: its own transaction
            return
        with self.raw.transaction():
            self.raw.run(self.COUNT, {"id": post_id})

    def set_views(self, counts: dict[int, int]) -> None:
        """Set posts' view counts outright (for imports and generated sites)."""
        with self.raw.transaction():
            self.raw.run_many(self.SET, ({"id": i, "views": v} for i, v in counts.items()))

    def forget(self, post_ids: Iterable[int]) -> None:
        """Drop the counts of posts that are gone (a new post may get the same id)."""
        ids = list(post_ids)
        if not ids or self.sqlite_path is None:
            return  # PostgreSQL: the foreign key's ON DELETE CASCADE does it
        with self.raw.transaction() as connection:
            connection.executemany(self._SQLITE_FORGET, [(i,) for i in ids])

    # --- reading ---

    def views(self, post_ids: Iterable[int]) -> dict[int, int]:
        """Give the view counts of these posts (those never viewed are left out)."""
        ids = list(post_ids)
        if not ids:
            return {}
        if self.sqlite_path is None:
            return dict(self.raw.run(self.VIEWS, {"ids": ids}).fetchall())
        counts: dict[int, int] = {}
        connection = self.raw.connection()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = self.VIEWS.sqlite.format(marks=", ".join("?" * len(chunk)))
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

    # --- plumbing ---

    def _set_up(self, connection: sqlite3.Connection) -> None:
        """Make a new SQLite connection ready: its pragmas, the schema, the carry-over."""
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in self._SQLITE_SCHEMA:
            connection.execute(statement)
        if self.trace is not None:
            connection.set_trace_callback(self.trace)
        self._carry_over(connection)

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
        with self.raw.transaction() as writing:
            if writing.execute("SELECT 1 FROM carried_over").fetchone():
                return  # another worker did it meanwhile
            writing.executemany(self._SQLITE_ADD, rows)
            writing.execute("INSERT INTO carried_over (source) VALUES ('post_views')")

    def close(self) -> None:
        """Close this thread's connection (the next use opens a new one)."""
        self.raw.close()


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
    begin_immediate(session)
    lock_post_writes(session)


def begin_immediate(session: Session) -> None:
    """Begin the session's transaction holding SQLite's write lock (on PostgreSQL, plainly).

    The session must not be in a transaction: end or roll back the one it is in first.
    """
    if is_sqlite(session.get_bind()):
        session.connection(execution_options={"sqlite_immediate": True})


def get_database(app: App) -> Database:
    return app.extensions["db"]


def get_view_counts(app: App) -> ViewCounts:
    return app.extensions["view_counts"]


# A session whose statements run one by one, outside a transaction (a GET's on PostgreSQL).
_READS_ALONE = "reads_alone"


def begin_savepoint(session: Session) -> Any:
    """Give `session.begin_nested()` (use it in a `with`), also in a GET's session.

    A GET on PostgreSQL reads outside a transaction (get_db), where there is no savepoint:
    its reads end first, and the savepoint begins in a transaction of the session's next
    connection (what was loaded is kept: sessions do not expire on commit).
    """
    if session.info.pop(_READS_ALONE, False):
        end_transaction(session)
    return session.begin_nested()


def get_db(request: Request) -> Session:
    """Give the request's session, opened on first use (a write transaction for POSTs)."""
    session = request.context.get("db")
    if session is None:
        from pyproject.lib import current_app

        database = get_database(current_app())
        write = request.method in UNSAFE_METHODS
        session = database.session(write=write)
        if not write and not is_sqlite(database.engine):
            # A GET on PostgreSQL reads statement by statement: no BEGIN before its first
            # query and no ROLLBACK after its last, two round trips of a page's eight to
            # eleven (#13). A write it makes after ending this (the session store's, which
            # rolls back first) gets a connection of its own, in a transaction as ever.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            session.info[_READS_ALONE] = True
        request.context["db"] = session
    return session
