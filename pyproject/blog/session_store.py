"""The sessions table as the framework's session store, shared by every worker and host."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from pyproject.blog.db import Database
from pyproject.blog.models import SessionRecord, utcnow


class DatabaseSessionStore:
    """Keeps session data in the `sessions` table, keyed by the hash of the session id."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self, key: str) -> dict[str, Any] | None:
        with self.database.read() as db:
            row = db.execute(
                select(SessionRecord.data, SessionRecord.expires_at).where(SessionRecord.key == key)
            ).first()
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
        with self.database.write() as db:
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
        with self.database.write() as db:
            db.execute(delete(SessionRecord).where(SessionRecord.key == key))

    def delete_for_user(self, user_id: int, *, keep: str | None = None) -> None:
        """End every session of a user (but `keep`, a store key), e.g. when deactivated."""
        with self.database.write() as db:
            query = delete(SessionRecord).where(SessionRecord.user_id == user_id)
            if keep is not None:
                query = query.where(SessionRecord.key != keep)
            db.execute(query)

    def purge_expired(self) -> int:
        """Delete expired sessions; give how many went."""
        with self.database.write() as db:
            result = db.execute(delete(SessionRecord).where(SessionRecord.expires_at <= utcnow()))
            return result.rowcount or 0
