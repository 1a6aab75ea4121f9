"""The general throttle (pyproject/blog/throttle.py), on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from pyproject.blog import jobs, throttle
from pyproject.blog.db import get_database
from pyproject.blog.models import RateEvent, utcnow
from pyproject.lib import App

SECRET = "test-secret-key"
TWO_AN_HOUR = throttle.Limit(2, 3600)


def hit(app: App, action: str = "reset", now=None, **keys: tuple[str, throttle.Limit]) -> int:
    with get_database(app).write() as db:
        return throttle.hit(db, action, keys, secret=SECRET, now=now)


def test_uses_are_allowed_up_to_the_limit_then_wait_for_the_oldest_to_leave_the_window(app):
    start = utcnow()
    assert hit(app, now=start, client=("10.0.0.1", TWO_AN_HOUR)) == 0
    assert hit(app, now=start + timedelta(minutes=10), client=("10.0.0.1", TWO_AN_HOUR)) == 0
    later = start + timedelta(minutes=20)
    wait = hit(app, now=later, client=("10.0.0.1", TWO_AN_HOUR))
    assert 40 * 60 <= wait <= 40 * 60 + 1  # the first use leaves the window in 40 minutes
    # A refused use is not counted: once the window moves on, one more is let through.
    assert hit(app, now=start + timedelta(minutes=61), client=("10.0.0.1", TWO_AN_HOUR)) == 0


def test_every_key_must_be_under_its_limit_and_each_is_counted_on_its_own(app):
    one = throttle.Limit(1, 3600)
    assert hit(app, client=("10.0.0.1", TWO_AN_HOUR), email=("a@example.com", one)) == 0
    # Another address from the same client: allowed (the client has one use left).
    assert hit(app, client=("10.0.0.1", TWO_AN_HOUR), email=("b@example.com", one)) == 0
    # The client is at its limit now, whatever the address.
    assert hit(app, client=("10.0.0.1", TWO_AN_HOUR), email=("c@example.com", one)) > 0
    # The first address is at its limit from any client.
    assert hit(app, client=("10.9.9.9", TWO_AN_HOUR), email=("A@Example.com ", one)) > 0


def test_actions_are_counted_apart(app):
    one = throttle.Limit(1, 3600)
    assert hit(app, "reset", client=("10.0.0.1", one)) == 0
    assert hit(app, "subscribe", client=("10.0.0.1", one)) == 0
    assert hit(app, "reset", client=("10.0.0.1", one)) > 0


def test_keys_are_stored_as_hmacs_not_as_typed(app):
    hit(app, email=("reader@example.com", TWO_AN_HOUR))
    with get_database(app).read() as db:
        keys = db.scalars(select(RateEvent.key)).all()
        assert throttle.uses(db, "reset", "reader@example.com", secret=SECRET, seconds=60) == 1
    assert len(keys) == 1 and "reader" not in keys[0] and len(keys[0]) == 64


def test_the_periodic_job_prunes_uses_older_than_any_window(app):
    hit(app, now=utcnow() - timedelta(days=3), client=("10.0.0.1", TWO_AN_HOUR))
    hit(app, client=("10.0.0.2", TWO_AN_HOUR))
    assert jobs.JOBS["pyproject.blog.throttle.prune_rate_events"].periodic is not None
    running = jobs.Worker(app, threads=1)
    running.start()  # the job asks for the worker's app
    try:
        assert throttle.prune_rate_events() == 1
    finally:
        running.stop()
    with get_database(app).read() as db:
        assert db.scalar(select(RateEvent.at)) > utcnow() - timedelta(minutes=1)
