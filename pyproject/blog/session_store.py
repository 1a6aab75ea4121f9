"""The sessions table as the framework's session store, shared by every worker and host.

Inside a request the store works in the request's own ORM session (pyproject.blog.db:
one connection per request, closed in teardown); outside one (commands, tests) in a
session of its own.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from pyproject.blog.db import Database, begin_immediate, get_db
from pyproject.blog.models import SessionRecord, User, utcnow
from pyproject.lib import Request, current_app, current_request

# Built once: SQLAlchemy then compiles it once per process.
_LOAD = select(SessionRecord.data, SessionRecord.expires_at).where(
    SessionRecord.key == bindparam("key")
)
# Within a request, the session's account comes with it: a signed-in request's first
# question is who it is (auth.current_user), and this saves it a query (#13).
_LOAD_WITH_USER = (
    select(SessionRecord.data, SessionRecord.expires_at, User)
    .outerjoin(User, User.id == SessionRecord.user_id)
    .where(SessionRecord.key == bindparam("key"))
)
_USER_KEY = "session_store.user"


def prefetched_user(request: Request, user_id: int) -> User | None:
    """Give the account read with this request's session if it is `user_id`'s, else None
    (nothing read with it, or not that account: the caller asks the database)."""
    user = request.context.get(_USER_KEY)
    return user if user is not None and user.id == user_id else None


class DatabaseSessionStore:
    """Keeps session data in the `sessions` table, keyed by the hash of the session id."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self, key: str) -> dict[str, Any] | None:
        request = current_request()
        db = self._request_session()
        if db is not None and request is not None:
            row = db.execute(_LOAD_WITH_USER, {"key": key}).first()
            if row is not None:
                request.context[_USER_KEY] = row[2]
        else:
            with self._reading() as db:
                row = db.connection().execute(_LOAD, {"key": key}).first()
        # Expiry is wall-clock time, like the expires_at the interface computes.
        if row is None or row.expires_at.timestamp() <= time.time():
            return None
        try:
            data = json.loads(row.data)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save(self, key: str, data: dict[str, Any], expires_at: float) -> None:
        expires = datetime.fromtimestamp(expires_at, UTC)
        user_id = data.get("user_id")
        with self._writing() as db:
            record = db.get(SessionRecord, key)
            if record is None:
                db.add(
                    SessionRecord(
                        key=key, data=json.dumps(data), user_id=user_id, expires_at=expires
                    )
                )
            else:
                record.data = json.dumps(data)
                record.user_id = user_id
                record.expires_at = expires

    def delete(self, key: str) -> None:
        with self._writing() as db:
            db.execute(delete(SessionRecord).where(SessionRecord.key == key))

    def delete_for_user(self, user_id: int, *, keep: str | None = None) -> None:
        """End every session of a user (but `keep`, a store key), e.g. when deactivated."""
        with self._writing() as db:
            query = delete(SessionRecord).where(SessionRecord.user_id == user_id)
            if keep is not None:
                query = query.where(SessionRecord.key != keep)
            db.execute(query)

    def purge_expired(self) -> int:
        """Delete expired sessions; give how many went."""
        with self._writing() as db:
            result = db.execute(delete(SessionRecord).where(SessionRecord.expires_at <= utcnow()))
            return result.rowcount or 0

    # --- which session ---

    def _request_session(self) -> Session | None:
        """Give the current request's ORM session (opened if need be), or None outside one."""
        request = current_request()
        if request is None or current_app().extensions.get("db") is not self.database:
            return None
        return get_db(request)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        db = self._request_session()
        if db is None:
            with self.database.read() as db:
                yield db
            return
        yield db  # the request's transaction goes on; teardown ends it

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        """Give a session in a write transaction of the store's own, committed at the end.

        In a request that is the request's session. What it had not committed is dropped
        first, as teardown would drop it (a view commits its work before the response;
        the session is saved after that), and the store's write begins afresh, holding
        SQLite's write lock from the start: a read transaction begun earlier could not
        become a write once another worker had written meanwhile.
        """
        db = self._request_session()
        if db is None:
            with self.database.write() as db:
                yield db
            return
        if db.in_transaction():
            db.rollback()
        begin_immediate(db)
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
