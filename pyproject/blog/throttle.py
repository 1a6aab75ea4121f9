"""Limits on how often something may be done: per client, per address, per anything.

Signing in has its own throttle (in auth.py, counting failures). Everything else that a
stranger can make the site do on their behalf, such as sending a password reset or a
subscription confirmation, counts its uses here: each use is a row in `rate_events`
under an action name and a key (a client address, an email address...), and a use is
allowed while every key has fewer than its limit of uses in its window.

Keys are stored as HMACs under the site's secret, never as typed: the table says how
often, not who. Rows older than the longest window are deleted by a periodic job.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from huey import crontab
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pyproject.blog import jobs
from pyproject.blog.db import get_database
from pyproject.blog.models import RateEvent, utcnow

KEEP = timedelta(days=2)  # longer than any window a caller may ask for


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` uses per `seconds` for one key."""

    count: int
    seconds: int


def _digest(secret: str, action: str, key: str) -> str:
    message = f"{action}\x00{key.strip().lower()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def hit(
    db: Session,
    action: str,
    limits: dict[str, tuple[str, Limit]],
    *,
    secret: str,
    now: datetime | None = None,
) -> int:
    """Count one use of `action` if every key is under its limit; give the wait otherwise.

    `limits` names each key: {"client": (address, Limit(10, 3600)), "email": (...)}.
    Gives 0 when the use was allowed (and recorded), else the seconds until the busiest
    key frees a place (and records nothing, so waiting is enough to be let through).
    Call it inside the write transaction of the request it guards.
    """
    now = now or utcnow()
    wait = 0
    digests = []
    for key, limit in limits.values():
        digest = _digest(secret, action, key)
        digests.append(digest)
        since = now - timedelta(seconds=limit.seconds)
        recent = (
            select(RateEvent.at)
            .where(RateEvent.action == action, RateEvent.key == digest, RateEvent.at > since)
            .order_by(RateEvent.at.desc())
            .offset(limit.count - 1)
            .limit(1)
        )
        oldest_counted = db.scalar(recent)  # the count-th newest use within the window
        if oldest_counted is not None:
            wait = max(wait, int((oldest_counted - since).total_seconds()) + 1)
    if wait:
        return wait
    for digest in dict.fromkeys(digests):
        db.add(RateEvent(action=action, key=digest, at=now))
    db.flush()
    return 0


def uses(db: Session, action: str, key: str, *, secret: str, seconds: int) -> int:
    """Give how many uses of `action` one key made in the last `seconds` (for pages and tests)."""
    since = utcnow() - timedelta(seconds=seconds)
    digest = _digest(secret, action, key)
    counted = select(func.count()).where(
        RateEvent.action == action, RateEvent.key == digest, RateEvent.at > since
    )
    return int(db.scalar(counted) or 0)


@jobs.job(retries=2, periodic=crontab(minute="17"))
def prune_rate_events() -> int:
    """Delete uses older than any window (hourly); give how many went."""
    with get_database(jobs.current_app()).write() as db:
        result = db.execute(delete(RateEvent).where(RateEvent.at < utcnow() - KEEP))
        return result.rowcount or 0
